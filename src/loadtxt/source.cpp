// text_source: mapped files, gzip input decompressed into memory, borrowed text.
#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

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

std::shared_ptr<std::vector<char>> gunzip(const std::string &path, std::string_view compressed) {
  auto out = std::make_shared<std::vector<char>>(std::max<std::size_t>(compressed.size() * 4, 1 << 16));
  const auto *base = reinterpret_cast<const Bytef *>(compressed.data());
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) // 15 + 32: gzip or zlib header, detected
    throw std::runtime_error("ndshm: zlib initialisation failed");
  auto consumed = [&] { return static_cast<std::size_t>(zs.next_in - base); };
  auto refill = [&] { zs.avail_in = static_cast<uInt>(std::min<std::size_t>(compressed.size() - consumed(), UINT32_MAX)); };
  auto fail = [&](const std::string &why) {
    inflateEnd(&zs);
    throw std::invalid_argument("ndshm: " + path + ": " + why);
  };
  zs.next_in = const_cast<Bytef *>(base);
  refill();
  std::size_t produced = 0;
  for (;;) {
    if (produced == out->size())
      out->resize(out->size() * 2);
    zs.next_out = reinterpret_cast<Bytef *>(out->data() + produced);
    zs.avail_out = static_cast<uInt>(std::min<std::size_t>(out->size() - produced, UINT32_MAX));
    auto room = zs.avail_out;
    int rc = inflate(&zs, Z_NO_FLUSH);
    produced += room - zs.avail_out;
    if (zs.avail_in == 0)
      refill();
    if (rc == Z_STREAM_END) {
      if (consumed() == compressed.size())
        break;
      inflateReset(&zs); // another gzip member follows (concatenated files, BGZF blocks)
      continue;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0)
      fail("truncated gzip data");
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      fail(std::string("invalid gzip data (") + (zs.msg != nullptr ? zs.msg : "corrupt") + ")");
  }
  inflateEnd(&zs);
  out->resize(produced);
  return out;
}

} // namespace

text_source text_source::open(const std::string &path) {
  detail::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    throw std::system_error(errno, std::generic_category(), path);
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0)
    throw std::system_error(errno, std::generic_category(), path);
  text_source source;
  source.m_name = path;
  if (st.st_size == 0)
    return source;
  auto size = static_cast<std::size_t>(st.st_size);
  // MAP_POPULATE maps a warm page cache at about 9 GB/s, five times read() into a buffer.
  void *address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd.get(), 0);
  if (address == MAP_FAILED)
    throw std::system_error(errno, std::generic_category(), path);
  std::shared_ptr<void> mapped(address, [size](void *p) { ::munmap(p, size); });
  std::string_view bytes(static_cast<const char *>(address), size);
  if (ends_with(path, ".gz")) {
    auto data = gunzip(path, bytes);
    source.m_text = without_bom(std::string_view(data->data(), data->size()));
    source.m_owner = std::move(data);
    return source;
  }
  source.m_text = without_bom(bytes);
  source.m_owner = std::move(mapped);
  return source;
}

text_source text_source::borrow(std::string_view text, std::string name) {
  text_source source;
  source.m_text = without_bom(text);
  source.m_name = std::move(name);
  return source;
}

} // namespace ndshm
