// text_source: mapped files, gzip input decompressed into memory, borrowed text; text_blocks: gzip
// input streamed in blocks of lines. Inflate: ISA-L when the build found it, else zlib.
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <cstring>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#if NDSHM_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include "detail/platform.hpp"
#include "ndshm/loadtxt.hpp"

namespace ndshm {
namespace {

std::string_view without_bom(std::string_view text) {
  // A UTF-8 byte order mark is not data (numpy would fail on it: 'ï»¿1' is not a number).
  constexpr std::string_view bom = "\xEF\xBB\xBF";
  return text.substr(0, 3) == bom ? text.substr(3) : text;
}

bool ends_with(const std::string &text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

#if NDSHM_HAVE_ISAL
/// ISA-L's inflate (igzip: about 3x zlib's speed) over a gzip buffer, concatenated members included
/// (BGZF files are made of them).
class inflater {
public:
  inflater(std::string path, std::string_view compressed)
      : m_path(std::move(path)), m_data(compressed), m_state(std::make_unique<inflate_state>()) {
    rewind();
  }

  void rewind() {
    start_member(reinterpret_cast<const std::uint8_t *>(m_data.data()));
    m_done = m_data.empty();
  }

  /// Decompresses into [out, out + room); returns the bytes written, 0 only at the end of the data.
  std::size_t read(char *out, std::size_t room) {
    std::size_t produced = 0;
    while (produced < room && !m_done) {
      inflate_state &z = *m_state;
      z.next_out = reinterpret_cast<std::uint8_t *>(out + produced);
      z.avail_out = static_cast<std::uint32_t>(std::min<std::size_t>(room - produced, UINT32_MAX));
      auto before = z.avail_out;
      int rc = isal_inflate(&z);
      produced += before - z.avail_out;
      if (rc < 0)
        fail("invalid gzip data (ISA-L error " + std::to_string(rc) + ")");
      if (z.avail_in == 0)
        z.avail_in = static_cast<std::uint32_t>(std::min<std::size_t>(m_data.size() - consumed(), UINT32_MAX));
      if (z.block_state == ISAL_BLOCK_FINISH) {
        if (consumed() == m_data.size())
          m_done = true;
        else
          start_member(z.next_in); // another member follows
      } else if (before == z.avail_out && consumed() == m_data.size()) {
        fail("truncated gzip data");
      }
    }
    return produced;
  }

private:
  void start_member(const std::uint8_t *at) {
    isal_inflate_init(m_state.get());
    m_state->crc_flag = ISAL_GZIP; // parse the header, check the CRC
    m_state->next_in = const_cast<std::uint8_t *>(at);
    m_state->avail_in = 0;
    m_state->avail_in = static_cast<std::uint32_t>(std::min<std::size_t>(m_data.size() - consumed(), UINT32_MAX));
  }
  [[nodiscard]] std::size_t consumed() const {
    return static_cast<std::size_t>(reinterpret_cast<const char *>(m_state->next_in) - m_data.data());
  }
  [[noreturn]] void fail(const std::string &why) const { throw std::invalid_argument("ndshm: " + m_path + ": " + why); }

  std::string m_path;
  std::string_view m_data;
  std::unique_ptr<inflate_state> m_state;
  bool m_done = false;
};
#else
/// zlib over a gzip (or zlib) buffer, concatenated members included (BGZF files are made of them).
class inflater {
public:
  inflater(std::string path, std::string_view compressed) : m_path(std::move(path)), m_data(compressed) {
    if (inflateInit2(&m_zs, 15 + 32) != Z_OK) // 15 + 32: gzip or zlib header, detected
      throw std::runtime_error("ndshm: zlib initialisation failed");
    rewind();
  }
  inflater(const inflater &) = delete;
  inflater &operator=(const inflater &) = delete;
  ~inflater() { inflateEnd(&m_zs); }

  void rewind() {
    inflateReset(&m_zs);
    m_zs.next_in = const_cast<Bytef *>(reinterpret_cast<const Bytef *>(m_data.data()));
    m_zs.avail_in = 0;
    refill();
    m_done = m_data.empty();
  }

  /// Decompresses into [out, out + room); returns the bytes written, 0 only at the end of the data.
  std::size_t read(char *out, std::size_t room) {
    std::size_t produced = 0;
    while (produced < room && !m_done) {
      m_zs.next_out = reinterpret_cast<Bytef *>(out + produced);
      m_zs.avail_out = static_cast<uInt>(std::min<std::size_t>(room - produced, UINT32_MAX));
      auto before = m_zs.avail_out;
      int rc = inflate(&m_zs, Z_NO_FLUSH);
      produced += before - m_zs.avail_out;
      if (m_zs.avail_in == 0)
        refill();
      if (rc == Z_STREAM_END) {
        if (consumed() == m_data.size())
          m_done = true;
        else
          inflateReset(&m_zs); // another member follows
        continue;
      }
      if (rc == Z_BUF_ERROR && m_zs.avail_in == 0)
        fail("truncated gzip data");
      if (rc != Z_OK && rc != Z_BUF_ERROR)
        fail(std::string("invalid gzip data (") + (m_zs.msg != nullptr ? m_zs.msg : "corrupt") + ")");
    }
    return produced;
  }

private:
  [[nodiscard]] std::size_t consumed() const {
    return static_cast<std::size_t>(reinterpret_cast<const char *>(m_zs.next_in) - m_data.data());
  }
  void refill() { m_zs.avail_in = static_cast<uInt>(std::min<std::size_t>(m_data.size() - consumed(), UINT32_MAX)); }
  [[noreturn]] void fail(const std::string &why) const { throw std::invalid_argument("ndshm: " + m_path + ": " + why); }

  std::string m_path;
  std::string_view m_data;
  z_stream m_zs{};
  bool m_done = false;
};
#endif

std::shared_ptr<std::vector<char>> gunzip(const std::string &path, std::string_view compressed) {
  auto out = std::make_shared<std::vector<char>>(std::max<std::size_t>(compressed.size() * 4, 1 << 16));
  inflater source(path, compressed);
  std::size_t produced = 0;
  for (;;) {
    if (produced == out->size())
      out->resize(out->size() * 2);
    auto n = source.read(out->data() + produced, out->size() - produced);
    if (n == 0)
      break;
    produced += n;
  }
  out->resize(produced);
  return out;
}

/// A file mapped read-only (empty files map to nothing). Pages are mapped as the parsing threads
/// first read them (the kernel maps 64 KiB around each fault): in parallel, and only the pages read.
std::pair<std::shared_ptr<void>, std::string_view> map_file(const std::string &path) {
  detail::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    throw std::system_error(errno, std::generic_category(), path);
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0)
    throw std::system_error(errno, std::generic_category(), path);
  if (st.st_size == 0)
    return {};
  auto size = static_cast<std::size_t>(st.st_size);
  // Measured on a warm 1 GB file: faults as read take 0.10 s on one thread, 0.055 s on two;
  // MAP_POPULATE 0.12 s on the calling thread alone (and the same before parsing can start).
  void *address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (address == MAP_FAILED)
    throw std::system_error(errno, std::generic_category(), path);
  return {std::shared_ptr<void>(address, [size](void *p) { ::munmap(p, size); }),
          std::string_view(static_cast<const char *>(address), size)};
}

} // namespace

text_source text_source::open(const std::string &path) {
  auto [mapped, bytes] = map_file(path);
  text_source source;
  source.m_name = path;
  if (ends_with(path, ".gz") && !bytes.empty()) {
    auto data = gunzip(path, bytes);
    source.m_text = without_bom(std::string_view(data->data(), data->size()));
    source.m_owner = std::move(data);
    return source;
  }
  source.m_text = without_bom(bytes);
  source.m_owner = std::move(mapped);
  return source;
}

text_source text_source::open(const std::string &path, std::uint64_t begin, std::uint64_t end) {
  if (ends_with(path, ".gz"))
    throw std::invalid_argument("ndshm: " + path + ": a byte range needs an uncompressed file");
  auto [mapped, bytes] = map_file(path); // only the range's pages are read
  // A line starts at 0 or after a newline; [begin, end) holds the lines whose first byte is in it.
  auto line_start = [&bytes](std::uint64_t at) -> std::size_t {
    if (at == 0)
      return 0;
    if (at > bytes.size())
      return bytes.size();
    auto newline = bytes.find('\n', static_cast<std::size_t>(at - 1));
    return newline == std::string_view::npos ? bytes.size() : newline + 1;
  };
  std::size_t first = line_start(begin), last = std::max(first, line_start(end));
  text_source source;
  source.m_name = path;
  source.m_text = bytes.substr(first, last - first);
  if (first == 0)
    source.m_text = without_bom(source.m_text);
  source.m_owner = std::move(mapped);
  return source;
}

text_source text_source::borrow(std::string_view text, std::string name, bool at_start) {
  text_source source;
  source.m_text = at_start ? without_bom(text) : text;
  source.m_name = std::move(name);
  return source;
}

// A thread inflates the next block while the caller parses the current one (at most three blocks
// exist: the caller's, one ready, one being filled).
struct text_blocks::state {
  std::string name;
  std::shared_ptr<void> mapping;
  std::string_view compressed;
  inflater source;
  std::size_t block_bytes;

  std::thread producer;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::vector<char>> ready; // whole lines; an empty block marks the end
  std::vector<std::vector<char>> spare;
  std::vector<char> current;           // the caller's block
  std::exception_ptr error;
  bool stopping = false, first = true, finished = false;

  state(std::string path, std::pair<std::shared_ptr<void>, std::string_view> file, std::size_t block)
      : name(path), mapping(std::move(file.first)), compressed(file.second), source(std::move(path), compressed),
        block_bytes(std::max<std::size_t>(block, 1)) {}
  state(const state &) = delete;
  state &operator=(const state &) = delete;
  ~state() { stop(); }

  void stop() {
    if (!producer.joinable())
      return;
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    changed.notify_all();
    producer.join();
  }

  void restart() {
    stop();
    source.rewind();
    ready.clear();
    error = nullptr;
    stopping = false;
    first = true;
    finished = false;
    producer = std::thread([this] { produce(); });
  }

  // Inflates block after block: each holds the previous block's unfinished line, then at least
  // block_bytes more (more for a longer line), cut after its last newline.
  void produce() {
    std::vector<char> carry;
    bool end = false;
    try {
      while (!(end && carry.empty())) {
        std::vector<char> block;
        {
          std::unique_lock lock(mutex);
          changed.wait(lock, [&] { return stopping || ready.empty(); });
          if (stopping)
            return;
          if (!spare.empty()) {
            block = std::move(spare.back());
            spare.pop_back();
          }
        }
        block.assign(carry.begin(), carry.end());
        std::size_t cut = 0, searched = carry.size(); // the carried part holds no newline
        for (;;) {
          std::size_t filled = block.size(), target = std::max(filled, carry.size()) + block_bytes;
          block.resize(target);
          while (filled < target && !end) {
            auto n = source.read(block.data() + filled, target - filled);
            filled += n;
            end = n == 0;
          }
          block.resize(filled);
          auto newline = std::string_view(block.data(), block.size()).substr(searched).rfind('\n');
          if (end || newline != std::string_view::npos) {
            cut = end ? block.size() : searched + newline + 1;
            break;
          } // else a line longer than a block: read on, looking only at what comes next
          searched = block.size();
        }
        carry.assign(block.begin() + static_cast<std::ptrdiff_t>(cut), block.end());
        block.resize(cut);
        {
          std::lock_guard lock(mutex);
          ready.push_back(std::move(block));
        }
        changed.notify_all();
      }
      std::lock_guard lock(mutex);
      ready.emplace_back(); // the end
    } catch (...) {
      std::lock_guard lock(mutex);
      error = std::current_exception();
    }
    changed.notify_all();
  }
};

text_blocks::text_blocks(std::unique_ptr<state> s) : m(std::move(s)) {}
text_blocks::text_blocks(text_blocks &&) noexcept = default;
text_blocks &text_blocks::operator=(text_blocks &&) noexcept = default;
text_blocks::~text_blocks() = default;

text_blocks text_blocks::open_gzip(const std::string &path, std::size_t block_bytes) {
  return text_blocks(std::make_unique<state>(path, map_file(path), block_bytes)); // started by the first next()
}

void text_blocks::rewind() { m->restart(); }

std::string_view text_blocks::next() {
  state &s = *m;
  if (!s.producer.joinable())
    s.restart();
  std::unique_lock lock(s.mutex);
  if (s.finished)
    return {};
  if (!s.current.empty())
    s.spare.push_back(std::move(s.current)); // the caller is done with it
  s.current.clear();
  s.changed.notify_all();
  s.changed.wait(lock, [&] { return !s.ready.empty() || s.error; });
  if (s.ready.empty())
    std::rethrow_exception(s.error);
  s.current = std::move(s.ready.front());
  s.ready.pop_front();
  s.finished = s.current.empty();
  s.changed.notify_all(); // room for the next block
  std::string_view text(s.current.data(), s.current.size());
  if (s.first) {
    s.first = false;
    constexpr std::string_view bom = "\xEF\xBB\xBF";
    if (text.substr(0, 3) == bom)
      text.remove_prefix(3);
  }
  return text;
}

const std::string &text_blocks::name() const noexcept { return m->name; }

} // namespace ndshm
