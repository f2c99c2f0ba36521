// Chunks (or pieces of a contiguous dataset) read with pread, decoded and copied into the output on all cores.
#include "ndshm/chunk_reader.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include "detail/parallel.hpp"

namespace ndshm {
namespace {

class file_descriptor {
public:
  explicit file_descriptor(const std::string &path) : m_fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (m_fd < 0)
      throw std::system_error(errno, std::generic_category(), "ndshm: cannot open " + path);
  }
  file_descriptor(const file_descriptor &) = delete;
  file_descriptor &operator=(const file_descriptor &) = delete;
  ~file_descriptor() { ::close(m_fd); }
  [[nodiscard]] int get() const noexcept { return m_fd; }

private:
  int m_fd;
};

/// pread until size bytes came: 0 on success, else an errno (EIO for a file that ends first).
[[nodiscard]] int read_fully(int fd, std::byte *into, std::uint64_t size, std::uint64_t offset) noexcept {
  while (size) {
    const ssize_t n = ::pread(fd, into, std::min<std::uint64_t>(size, 1u << 30), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (n == 0)
      return EIO;
    into += n;
    size -= static_cast<std::uint64_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

unsigned thread_count(unsigned threads, std::size_t work) {
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>(threads, work)));
}

bool identity(const element_map &map, std::uint64_t itemsize) {
  return map.fields.empty() && (map.out_itemsize == 0 || map.out_itemsize == itemsize);
}

/// count elements from src (stored) to dst (output).
void copy_elements(const std::byte *src, std::byte *dst, std::uint64_t count, std::uint64_t itemsize,
                   const element_map &map, bool whole) noexcept {
  if (whole) {
    std::memcpy(dst, src, count * itemsize);
    return;
  }
  const std::uint64_t out_itemsize = map.out_itemsize;
  for (std::uint64_t i = 0; i < count; ++i, src += itemsize, dst += out_itemsize)
    for (const auto &f : map.fields)
      std::memcpy(dst + f.to, src + f.from, f.size);
}

/// The first failure seen by any thread; the others stop at their next chunk.
class first_failure {
public:
  void record(std::size_t index, std::string reason) {
    std::lock_guard lock(m_mutex);
    if (!m_failure || index < m_failure->first)
      m_failure.emplace(index, std::move(reason));
    m_stop.store(true, std::memory_order_relaxed);
  }
  [[nodiscard]] bool stopped() const noexcept { return m_stop.load(std::memory_order_relaxed); }
  void rethrow() const {
    if (m_failure)
      throw chunk_error(m_failure->first, m_failure->second);
  }

private:
  std::mutex m_mutex;
  std::atomic<bool> m_stop{false};
  std::optional<std::pair<std::size_t, std::string>> m_failure;
};

/// Where a chunk's elements go: the chunked dimensions from the last one that is not whole in the
/// dataset (those after it form one contiguous run in the chunk and in the output alike).
class chunk_geometry {
public:
  chunk_geometry(const dataset_geometry &g, const element_map &map)
      : m_g(g), m_map(map), m_whole(identity(map, g.itemsize)),
        m_out_itemsize(map.out_itemsize ? map.out_itemsize : g.itemsize) {
    const std::size_t nd = g.shape.size();
    if (nd == 0 || g.chunk.size() != nd)
      throw std::invalid_argument("ndshm: chunk dimensions do not match the dataset's");
    for (std::size_t k = 0; k < nd; ++k)
      if (g.chunk[k] <= 0 || g.shape[k] < 0)
        throw std::invalid_argument("ndshm: chunk dimensions must be positive");
    if (g.row_begin < 0 || g.row_end < g.row_begin || g.row_end > g.shape[0])
      throw std::invalid_argument("ndshm: rows outside the dataset");
    m_split = nd;
    m_inner = 1;
    while (m_split > 1 && g.chunk[m_split - 1] == g.shape[m_split - 1]) {
      --m_split;
      m_inner *= static_cast<std::uint64_t>(g.shape[m_split]);
    }
    // Element strides of the first m_split dimensions, in the chunk and in the output.
    m_chunk_stride.assign(m_split, 0);
    m_out_stride.assign(m_split, 0);
    std::uint64_t cs = m_inner, os = m_inner;
    for (std::size_t k = m_split; k-- > 0;) {
      m_chunk_stride[k] = cs;
      m_out_stride[k] = os;
      cs *= static_cast<std::uint64_t>(g.chunk[k]);
      os *= static_cast<std::uint64_t>(g.shape[k]);
    }
    m_chunk_bytes = cs * g.itemsize;
  }

  [[nodiscard]] std::uint64_t chunk_bytes() const noexcept { return m_chunk_bytes; }

  /// True if the chunk holds any selected element.
  [[nodiscard]] bool selected(std::span<const std::int64_t> origin) const noexcept {
    if (origin.size() != m_g.shape.size())
      return false;
    if (origin[0] >= m_g.row_end || origin[0] + m_g.chunk[0] <= m_g.row_begin)
      return false;
    for (std::size_t k = 1; k < origin.size(); ++k)
      if (origin[k] < 0 || origin[k] >= m_g.shape[k])
        return false;
    return true;
  }

  /// Where the chunk's decoded bytes can go as they are (the whole chunk lies in the selection and
  /// in the output contiguously), or null.
  [[nodiscard]] std::byte *direct(std::span<const std::int64_t> origin, std::byte *out) const noexcept {
    if (!m_whole || m_split != 1 || origin[0] < m_g.row_begin || origin[0] + m_g.chunk[0] > m_g.row_end)
      return nullptr;
    return out + static_cast<std::uint64_t>(origin[0] - m_g.row_begin) * m_out_stride[0] * m_g.itemsize;
  }

  /// Copies the selected elements of a decoded chunk into the output.
  void scatter(const std::byte *chunk, std::span<const std::int64_t> origin, std::byte *out) const noexcept {
    const std::size_t last = m_split - 1;
    std::int64_t lo[32], hi[32], at[32];
    for (std::size_t k = 0; k < m_split; ++k) {
      const std::int64_t begin = k == 0 ? m_g.row_begin : 0, end = k == 0 ? m_g.row_end : m_g.shape[k];
      lo[k] = std::max(origin[k], begin);
      hi[k] = std::min(origin[k] + m_g.chunk[k], end);
      if (lo[k] >= hi[k])
        return;
      at[k] = lo[k];
    }
    const std::uint64_t run = static_cast<std::uint64_t>(hi[last] - lo[last]) * m_inner;
    for (;;) {
      std::uint64_t from = 0, to = 0;
      for (std::size_t k = 0; k < m_split; ++k) {
        from += static_cast<std::uint64_t>(at[k] - origin[k]) * m_chunk_stride[k];
        to += static_cast<std::uint64_t>(at[k] - (k == 0 ? m_g.row_begin : 0)) * m_out_stride[k];
      }
      copy_elements(chunk + from * m_g.itemsize, out + to * m_out_itemsize, run, m_g.itemsize, m_map, m_whole);
      // the next run: an odometer over the dimensions before the last
      std::size_t k = last;
      while (k-- > 0) {
        if (++at[k] < hi[k])
          break;
        at[k] = lo[k];
      }
      if (k == static_cast<std::size_t>(-1))
        return;
    }
  }

  [[nodiscard]] std::size_t dims() const noexcept { return m_split; }
  /// Bytes of the output: the selected rows.
  [[nodiscard]] std::uint64_t out_bytes() const noexcept {
    return static_cast<std::uint64_t>(m_g.row_end - m_g.row_begin) * m_out_stride[0] * m_out_itemsize;
  }

private:
  const dataset_geometry &m_g;
  const element_map &m_map;
  bool m_whole;
  std::uint64_t m_out_itemsize;
  std::size_t m_split = 1;  ///< dimensions iterated; those from m_split on are whole
  std::uint64_t m_inner = 1; ///< elements of the whole trailing dimensions
  std::vector<std::uint64_t> m_chunk_stride, m_out_stride;
  std::uint64_t m_chunk_bytes = 0;
};

} // namespace

chunk_error::chunk_error(std::size_t chunk, std::string reason)
    : std::runtime_error("ndshm: chunk " + std::to_string(chunk) + ": " + reason), chunk(chunk),
      reason(std::move(reason)) {}

void read_chunked(const std::string &path, const dataset_geometry &geometry, std::span<const filter> pipeline,
                  std::span<const stored_chunk> chunks, const element_map &map, std::span<std::byte> output,
                  unsigned threads) {
  const chunk_geometry where(geometry, map);
  if (output.size() < where.out_bytes())
    throw std::invalid_argument("ndshm: output buffer too small for the rows");
  std::byte *out = output.data();
  if (where.dims() > 32)
    throw std::invalid_argument("ndshm: more than 32 dimensions");
  for (const auto &f : pipeline)
    if (!decodes(f.id))
      throw std::invalid_argument("ndshm: " + describe(decode_status::unsupported, f.id));
  file_descriptor file(path);
  const unsigned n = thread_count(threads, chunks.size());
  std::uint64_t largest = 0;
  for (const auto &c : chunks)
    largest = std::max(largest, c.size);
  // Every buffer up front: the threads never allocate.
  struct worker {
    chunk_decoder decoder;
    std::vector<std::byte> stored, decoded;
  };
  std::vector<worker> workers(n);
  for (auto &w : workers) {
    w.decoder.reserve(where.chunk_bytes());
    w.stored.resize(largest);
    w.decoded.resize(where.chunk_bytes());
  }
  first_failure failure;
  std::atomic<std::size_t> next{0};
  detail::run_parallel(n, [&](std::size_t t) {
    worker &w = workers[t];
    for (std::size_t i = next++; i < chunks.size() && !failure.stopped(); i = next++) {
      const stored_chunk &c = chunks[i];
      if (!where.selected(c.origin))
        continue;
      if (int error = read_fully(file.get(), w.stored.data(), c.size, c.file_offset)) {
        failure.record(i, error == EIO ? "the file ends before its " + std::to_string(c.size) +
                                             " bytes at offset " + std::to_string(c.file_offset)
                                       : std::generic_category().message(error));
        return;
      }
      std::byte *target = where.direct(c.origin, out);
      std::span<std::byte> into(target ? target : w.decoded.data(), where.chunk_bytes());
      auto result = w.decoder.decode(pipeline, c.filter_mask, {w.stored.data(), c.size}, into);
      if (result.status != decode_status::ok) {
        failure.record(i, describe(result.status, result.filter));
        return;
      }
      if (!target)
        where.scatter(w.decoded.data(), c.origin, out);
    }
  });
  failure.rethrow();
}

void read_contiguous(const std::string &path, std::uint64_t file_offset, const dataset_geometry &geometry,
                     const element_map &map, std::span<std::byte> output, unsigned threads) {
  if (geometry.shape.empty() || geometry.row_begin < 0 || geometry.row_end < geometry.row_begin ||
      geometry.row_end > geometry.shape[0])
    throw std::invalid_argument("ndshm: rows outside the dataset");
  std::uint64_t row_items = 1;
  for (std::size_t k = 1; k < geometry.shape.size(); ++k)
    row_items *= static_cast<std::uint64_t>(geometry.shape[k]);
  const std::uint64_t row_bytes = row_items * geometry.itemsize;
  const auto rows = static_cast<std::uint64_t>(geometry.row_end - geometry.row_begin);
  const bool whole = identity(map, geometry.itemsize);
  const std::uint64_t out_row = row_items * (map.out_itemsize ? map.out_itemsize : geometry.itemsize);
  if (output.size() < rows * out_row)
    throw std::invalid_argument("ndshm: output buffer too small for the rows");
  std::byte *out = output.data();
  if (row_bytes == 0 || rows == 0)
    return;
  // Pieces of about 4 MiB: enough of them for the threads to share, each one read() worth its call.
  const std::uint64_t piece_rows = std::max<std::uint64_t>(1, (4u << 20) / row_bytes);
  const std::size_t pieces = (rows + piece_rows - 1) / piece_rows;
  file_descriptor file(path);
  const unsigned n = thread_count(threads, pieces);
  std::vector<std::vector<std::byte>> buffers(whole ? 0 : n);
  for (auto &b : buffers)
    b.resize(piece_rows * row_bytes);
  std::atomic<int> error{0};
  std::atomic<std::size_t> next{0};
  const std::uint64_t start = file_offset + static_cast<std::uint64_t>(geometry.row_begin) * row_bytes;
  detail::run_parallel(n, [&](std::size_t t) {
    for (std::size_t i = next++; i < pieces && !error.load(std::memory_order_relaxed); i = next++) {
      const std::uint64_t first = i * piece_rows, count = std::min(piece_rows, rows - first);
      std::byte *into = whole ? out + first * row_bytes : buffers[t].data();
      if (int e = read_fully(file.get(), into, count * row_bytes, start + first * row_bytes)) {
        error.store(e);
        return;
      }
      if (!whole)
        copy_elements(into, out + first * out_row, count * row_items, geometry.itemsize, map, false);
    }
  });
  if (int e = error.load())
    throw std::system_error(e, std::generic_category(),
                            e == EIO ? "ndshm: " + path + " ends before the dataset's data" : "ndshm: reading " + path);
}

} // namespace ndshm
