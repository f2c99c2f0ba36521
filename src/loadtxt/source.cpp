// text_source: mapped files, gzip input decompressed into memory, borrowed text; text_blocks: gzip
// input streamed in blocks of lines. Inflate: ISA-L when the build found it, else zlib; BGZF files
// (independent members of at most 64 KiB) on all cores.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
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

#include "detail/parallel.hpp"
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

/// Nothing, or zero bytes only, after a gzip member: the end (gzip(1) and Python's gzip accept such
/// padding, which some writers add to fill a block).
bool only_padding(std::string_view rest) {
  return std::all_of(rest.begin(), rest.end(), [](char c) { return c == '\0'; });
}

/// One whole gzip member inflated into a buffer of its exact uncompressed size (BGZF blocks, below).
class member_inflater {
public:
#if NDSHM_HAVE_ISAL
  member_inflater() : m_state(std::make_unique<inflate_state>()) {}
  /// False if the data is corrupt or does not inflate to exactly out_size bytes.
  bool inflate(const std::uint8_t *in, std::size_t in_size, char *out, std::size_t out_size) {
    inflate_state &z = *m_state;
    isal_inflate_init(&z);
    z.crc_flag = ISAL_GZIP; // parse the header, check the CRC
    z.next_in = const_cast<std::uint8_t *>(in);
    z.avail_in = static_cast<std::uint32_t>(in_size);
    z.next_out = reinterpret_cast<std::uint8_t *>(out);
    z.avail_out = static_cast<std::uint32_t>(out_size);
    // ... and exactly in_size bytes of input: a member whose stated size covers more is refused
    return isal_inflate(&z) == ISAL_DECOMP_OK && z.block_state == ISAL_BLOCK_FINISH && z.avail_out == 0 &&
           z.avail_in == 0;
  }

private:
  std::unique_ptr<inflate_state> m_state;
#else
  member_inflater() {
    if (inflateInit2(&m_zs, 15 + 16) != Z_OK) // 15 + 16: a gzip header
      throw std::runtime_error("ndshm: zlib initialisation failed");
  }
  member_inflater(const member_inflater &) = delete;
  member_inflater &operator=(const member_inflater &) = delete;
  ~member_inflater() { inflateEnd(&m_zs); }
  bool inflate(const std::uint8_t *in, std::size_t in_size, char *out, std::size_t out_size) {
    inflateReset(&m_zs);
    m_zs.next_in = const_cast<Bytef *>(in);
    m_zs.avail_in = static_cast<uInt>(in_size);
    m_zs.next_out = reinterpret_cast<Bytef *>(out);
    m_zs.avail_out = static_cast<uInt>(out_size);
    return ::inflate(&m_zs, Z_FINISH) == Z_STREAM_END && m_zs.avail_out == 0 && m_zs.avail_in == 0;
  }

private:
  z_stream m_zs{};
#endif
};

/// A BGZF member (bgzip, htslib: the usual .gz of genomics): a gzip member of at most 64 KiB whose
/// header holds its compressed size (extra subfield "BC") and whose trailer its uncompressed size, so
/// that members are found without inflating and inflate independently, on several threads.
struct bgzf_member {
  std::size_t offset = 0, size = 0; ///< within the compressed data
  std::uint32_t isize = 0;          ///< uncompressed bytes
};

/// The BGZF member starting at offset, or nothing if none does (another kind of gzip, truncated data).
std::optional<bgzf_member> bgzf_at(std::string_view data, std::size_t offset) {
  auto byte = [&](std::size_t at) { return static_cast<std::uint32_t>(static_cast<std::uint8_t>(data[offset + at])); };
  auto le16 = [&](std::size_t at) { return byte(at) | byte(at + 1) << 8; };
  if (data.size() - offset < 18 || byte(0) != 0x1f || byte(1) != 0x8b || byte(2) != 8 || (byte(3) & 4) == 0)
    return std::nullopt;
  std::size_t extra_end = 12 + le16(10);
  for (std::size_t at = 12; at + 4 <= extra_end && offset + extra_end <= data.size(); at += 4 + le16(at + 2)) {
    if (byte(at) == 'B' && byte(at + 1) == 'C' && le16(at + 2) == 2 && at + 6 <= extra_end) {
      std::size_t size = le16(at + 4) + 1;
      if (size < extra_end + 8 || data.size() - offset < size)
        return std::nullopt;
      std::uint32_t isize = byte(size - 4) | byte(size - 3) << 8 | byte(size - 2) << 16 | byte(size - 1) << 24;
      if (isize > 65536) // BGZF's limit: no member makes us allocate more
        return std::nullopt;
      return bgzf_member{offset, size, isize};
    }
  }
  return std::nullopt;
}

/// Inflates the BGZF members that follow in data, as many as fit in a buffer, on all cores; the
/// inflater below takes over at the first member that is not BGZF (or is damaged: it words the error).
class bgzf_reader {
public:
  explicit bgzf_reader(std::string_view data) : m_data(data) {}

  void rewind() {
    m_offset = 0;
    m_pending.clear();
    m_pending_at = 0;
  }
  /// Where the members read so far end.
  [[nodiscard]] std::size_t offset() const noexcept { return m_offset; }

  /// Inflates whole members into [out, out + room) (or part of one too big for room, the rest kept
  /// for the next call). Returns the bytes written; 0 when the next bytes are not a BGZF member.
  std::size_t read(char *out, std::size_t room) {
    if (m_pending_at < m_pending.size()) {
      std::size_t n = std::min(room, m_pending.size() - m_pending_at);
      std::memcpy(out, m_pending.data() + m_pending_at, n);
      m_pending_at += n;
      return n;
    }
    for (;;) { // until some bytes come out (members may be empty: BGZF's end-of-file marker is one)
      std::vector<bgzf_member> members;
      std::size_t total = 0, offset = m_offset;
      while (offset < m_data.size()) {
        auto member = bgzf_at(m_data, offset);
        if (!member || total + member->isize > room)
          break;
        members.push_back(*member);
        total += member->isize;
        offset += member->size;
      }
      if (members.empty()) {
        auto member = offset < m_data.size() ? bgzf_at(m_data, offset) : std::nullopt;
        if (!member)
          return 0;
        m_pending.resize(member->isize); // larger than room: inflate it aside, hand it out in parts
        if (!inflate({*member}, m_pending.data()))
          return 0;
        m_pending_at = 0;
        m_offset = member->offset + member->size;
        return read(out, room);
      }
      if (!inflate(members, out))
        return 0; // the serial inflater, starting at the first of these members, words the error
      m_offset = offset;
      if (total != 0)
        return total;
    }
  }

private:
  /// Inflates members into consecutive bytes from out, spread over the cores; false if any fails.
  bool inflate(const std::vector<bgzf_member> &members, char *out) {
    std::vector<std::size_t> starts(members.size() + 1, 0);
    for (std::size_t i = 0; i < members.size(); ++i)
      starts[i + 1] = starts[i] + members[i].isize;
    auto n = std::min<std::size_t>(std::max(1u, std::thread::hardware_concurrency()), (members.size() + 7) / 8);
    std::atomic<bool> ok{true};
    auto work = [&](std::size_t t) noexcept {
      try {
        member_inflater z;
        for (std::size_t i = members.size() * t / n; i < members.size() * (t + 1) / n && ok; ++i)
          if (!z.inflate(reinterpret_cast<const std::uint8_t *>(m_data.data() + members[i].offset), members[i].size,
                         out + starts[i], members[i].isize))
            ok = false;
      } catch (...) { // no memory for an inflater: the serial path reports what it finds
        ok = false;
      }
    };
    detail::run_parallel(n, work);
    return ok;
  }

  std::string_view m_data;
  std::size_t m_offset = 0;
  std::vector<char> m_pending;
  std::size_t m_pending_at = 0;
};

#if NDSHM_HAVE_ISAL
/// ISA-L's inflate (igzip: about 3x zlib's speed) over a gzip buffer, concatenated members included
/// (BGZF files are made of them).
class inflater {
public:
  inflater(std::string path, std::string_view compressed)
      : m_path(std::move(path)), m_data(compressed), m_state(std::make_unique<inflate_state>()) {
    rewind();
  }

  void rewind() { start_at(0); }
  /// Goes on from a member starting at offset.
  void start_at(std::size_t offset) {
    start_member(reinterpret_cast<const std::uint8_t *>(m_data.data() + offset));
    m_done = only_padding(m_data.substr(std::min(offset, m_data.size())));
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
        if (only_padding(m_data.substr(consumed())))
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

  void rewind() { start_at(0); }
  /// Goes on from a member starting at offset.
  void start_at(std::size_t offset) {
    inflateReset(&m_zs);
    m_zs.next_in = const_cast<Bytef *>(reinterpret_cast<const Bytef *>(m_data.data() + offset));
    m_zs.avail_in = 0;
    refill();
    m_done = only_padding(m_data.substr(std::min(offset, m_data.size())));
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
        if (only_padding(m_data.substr(consumed())))
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

/// A gzip buffer inflated in order: BGZF members on all cores while they last, then (or for any other
/// gzip) member after member on this thread.
class gzip_reader {
public:
  gzip_reader(std::string path, std::string_view compressed)
      : m_parallel(compressed), m_serial(std::move(path), compressed) {}

  void rewind() {
    m_parallel.rewind();
    m_serial.rewind();
    m_bgzf = true;
  }

  /// Decompresses into [out, out + room); returns the bytes written, 0 only at the end of the data.
  std::size_t read(char *out, std::size_t room) {
    if (m_bgzf) {
      if (std::size_t n = m_parallel.read(out, room); n != 0)
        return n;
      m_bgzf = false;
      m_serial.start_at(m_parallel.offset());
    }
    return m_serial.read(out, room);
  }

private:
  bgzf_reader m_parallel;
  inflater m_serial;
  bool m_bgzf = true;
};

std::shared_ptr<std::vector<char>> gunzip(const std::string &path, std::string_view compressed) {
  auto out = std::make_shared<std::vector<char>>(std::max<std::size_t>(compressed.size() * 4, 1 << 16));
  gzip_reader source(path, compressed);
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
  // Measured on a warm 1 GB file (bench/prototypes/mapt.cpp): faults as read take 0.10 s on one
  // thread, 0.055 s on two; MAP_POPULATE 0.12 s on the calling thread alone, before parsing can start.
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
  source.m_mapped = true;
  return source;
}

void text_source::release(const char *begin, const char *end) const noexcept {
  if (m_mapped)
    detail::file_pages_release(begin, static_cast<std::uint64_t>(end - begin));
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
  source.m_mapped = true;
  return source;
}

text_source text_source::borrow(std::string_view text, std::string name, bool at_start) {
  text_source source;
  source.m_text = at_start ? without_bom(text) : text;
  source.m_name = std::move(name);
  return source;
}

// A thread inflates the next blocks while the caller parses the current one (at most four blocks
// exist: the caller's, two ready, one being filled; two ready absorb the two stages' jitter).
struct text_blocks::state {
  std::string name;
  std::shared_ptr<void> mapping;
  std::string_view compressed;
  gzip_reader source;
  std::size_t block_bytes;
  bool parallel; // BGZF

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
        block_bytes(std::max<std::size_t>(block, 1)), parallel(bgzf_at(compressed, 0).has_value()) {}
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
          changed.wait(lock, [&] { return stopping || ready.size() < 2; });
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

bool text_blocks::inflates_in_parallel() const noexcept { return m->parallel; }

} // namespace ndshm
