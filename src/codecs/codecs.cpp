// HDF5's filter pipeline on one thread: each filter's codec, decode() and encode() chaining them; and
// encode_chunks, which cuts data into chunks and encodes them on all cores.
#include "ndshm/codecs.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <thread>

#include <zlib.h>
#if NDSHM_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif
#if NDSHM_HAVE_ZSTD
#include <zstd.h>
#include <zstd_errors.h>
#endif
#if NDSHM_HAVE_LZF
#include <lzf.h>
#endif
#if NDSHM_HAVE_BLOSC
#include <blosc.h>
#endif

#include "detail/parallel.hpp"

namespace ndshm {
namespace {

// Scratch beyond the chunk size: room for the checksums of fletcher32 steps that come before others.
constexpr std::size_t slack = 4 * 32;

struct produced {
  decode_status status = decode_status::ok;
  std::size_t size = 0;
};

template <std::size_t E> void unshuffle_fixed(const std::byte *in, std::byte *out, std::size_t n) noexcept {
  // Blocks of elements small enough that the output block stays in L1 while each byte plane is read.
  constexpr std::size_t block = 1024;
  for (std::size_t i0 = 0; i0 < n; i0 += block) {
    const std::size_t count = std::min(block, n - i0);
    std::byte *dst = out + i0 * E;
    for (std::size_t i = 0; i < count; ++i)
      for (std::size_t b = 0; b < E; ++b)
        dst[i * E + b] = in[b * n + i0 + i];
  }
}

void unshuffle_any(const std::byte *in, std::byte *out, std::size_t n, std::size_t element) noexcept {
  constexpr std::size_t block = 256;
  for (std::size_t i0 = 0; i0 < n; i0 += block) {
    const std::size_t count = std::min(block, n - i0);
    for (std::size_t b = 0; b < element; ++b) {
      const std::byte *src = in + b * n + i0;
      std::byte *dst = out + i0 * element + b;
      for (std::size_t i = 0; i < count; ++i)
        dst[i * element] = src[i];
    }
  }
}

std::uint32_t load_le32(const std::byte *p) noexcept {
  return std::to_integer<std::uint32_t>(p[0]) | std::to_integer<std::uint32_t>(p[1]) << 8 |
         std::to_integer<std::uint32_t>(p[2]) << 16 | std::to_integer<std::uint32_t>(p[3]) << 24;
}

const char *filter_name(std::uint32_t id) noexcept {
  switch (id) {
  case filter_id::deflate: return "deflate";
  case filter_id::shuffle: return "shuffle";
  case filter_id::fletcher32: return "fletcher32";
  case filter_id::lzf: return "lzf";
  case filter_id::blosc: return "blosc";
  case filter_id::zstd: return "zstd";
  default: return "filter";
  }
}

} // namespace

bool decodes(std::uint32_t id) noexcept {
  switch (id) {
  case filter_id::deflate:
  case filter_id::shuffle:
  case filter_id::fletcher32:
    return true;
  case filter_id::lzf: return NDSHM_HAVE_LZF != 0;
  case filter_id::zstd: return NDSHM_HAVE_ZSTD != 0;
  case filter_id::blosc: return NDSHM_HAVE_BLOSC != 0;
  default: return false;
  }
}

std::vector<std::uint32_t> decoded_filters() {
  std::vector<std::uint32_t> ids;
  for (auto id : {filter_id::deflate, filter_id::shuffle, filter_id::fletcher32, filter_id::lzf,
                  filter_id::blosc, filter_id::zstd})
    if (decodes(id))
      ids.push_back(id);
  return ids;
}

std::string describe(decode_status status, std::uint32_t filter) {
  std::string name = filter_name(filter);
  if (name == "filter")
    name += " " + std::to_string(filter);
  switch (status) {
  case decode_status::ok: return name + ": ok";
  case decode_status::corrupt: return name + " data is corrupt";
  case decode_status::wrong_size: return name + " data does not decode to the chunk's size";
  case decode_status::checksum: return "fletcher32 checksum mismatch";
  case decode_status::unsupported: return name + " is not decoded by this build";
  }
  return name;
}

std::uint32_t fletcher32(std::span<const std::byte> data) noexcept {
  std::uint32_t sum1 = 0, sum2 = 0;
  const std::byte *p = data.data();
  std::size_t words = data.size() / 2;
  while (words) {
    // 360 words keep both sums below 2^32 before folding (as HDF5 does).
    std::size_t run = std::min<std::size_t>(words, 360);
    words -= run;
    for (; run; --run, p += 2) {
      sum1 += std::to_integer<std::uint32_t>(p[0]) << 8 | std::to_integer<std::uint32_t>(p[1]);
      sum2 += sum1;
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  if (data.size() % 2) {
    sum1 += std::to_integer<std::uint32_t>(*p) << 8;
    sum2 += sum1;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  sum1 = (sum1 & 0xffff) + (sum1 >> 16);
  sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  return sum2 << 16 | sum1;
}

void shuffle(const std::byte *in, std::byte *out, std::size_t size, std::size_t element) noexcept {
  const std::size_t n = element ? size / element : 0;
  if (element <= 1 || n <= 1) {
    std::memcpy(out, in, size);
    return;
  }
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t b = 0; b < element; ++b)
      out[b * n + i] = in[i * element + b];
  std::memcpy(out + n * element, in + n * element, size - n * element);
}

void unshuffle(const std::byte *in, std::byte *out, std::size_t size, std::size_t element) noexcept {
  const std::size_t n = element ? size / element : 0;
  if (element <= 1 || n <= 1) {
    std::memcpy(out, in, size);
    return;
  }
  switch (element) {
  case 2: unshuffle_fixed<2>(in, out, n); break;
  case 4: unshuffle_fixed<4>(in, out, n); break;
  case 8: unshuffle_fixed<8>(in, out, n); break;
  case 16: unshuffle_fixed<16>(in, out, n); break;
  default: unshuffle_any(in, out, n, element); break;
  }
  std::memcpy(out + n * element, in + n * element, size - n * element);
}

struct chunk_decoder::state {
  std::vector<std::byte> scratch[2];
#if NDSHM_HAVE_LIBDEFLATE
  libdeflate_decompressor *inflater = nullptr;
#else
  z_stream stream{};
  bool stream_ready = false;
#endif
#if NDSHM_HAVE_ZSTD
  ZSTD_DCtx *zstd = nullptr;
#endif

  state() {
#if NDSHM_HAVE_LIBDEFLATE
    inflater = libdeflate_alloc_decompressor();
    if (!inflater)
      throw std::bad_alloc();
#else
    if (inflateInit(&stream) != Z_OK)
      throw std::bad_alloc();
    stream_ready = true;
#endif
#if NDSHM_HAVE_ZSTD
    zstd = ZSTD_createDCtx();
    if (!zstd)
      throw std::bad_alloc();
#endif
  }
  state(const state &) = delete;
  state &operator=(const state &) = delete;
  ~state() {
#if NDSHM_HAVE_LIBDEFLATE
    libdeflate_free_decompressor(inflater);
#else
    if (stream_ready)
      inflateEnd(&stream);
#endif
#if NDSHM_HAVE_ZSTD
    ZSTD_freeDCtx(zstd);
#endif
  }

  produced inflate(std::span<const std::byte> in, std::span<std::byte> out) noexcept {
#if NDSHM_HAVE_LIBDEFLATE
    std::size_t actual = 0;
    switch (libdeflate_zlib_decompress(inflater, in.data(), in.size(), out.data(), out.size(), &actual)) {
    case LIBDEFLATE_SUCCESS: return {decode_status::ok, actual};
    case LIBDEFLATE_INSUFFICIENT_SPACE: return {decode_status::wrong_size, 0};
    default: return {decode_status::corrupt, 0};
    }
#else
    // An HDF5 chunk is below 4 GiB, so one call covers it (zlib counts in uInt).
    if (in.size() > UINT32_MAX || out.size() > UINT32_MAX || inflateReset(&stream) != Z_OK)
      return {decode_status::corrupt, 0};
    stream.next_in = reinterpret_cast<Bytef *>(const_cast<std::byte *>(in.data()));
    stream.avail_in = static_cast<uInt>(in.size());
    stream.next_out = reinterpret_cast<Bytef *>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    const int rc = ::inflate(&stream, Z_FINISH);
    if (rc == Z_STREAM_END)
      return {decode_status::ok, out.size() - stream.avail_out};
    return {rc == Z_BUF_ERROR && stream.avail_out == 0 ? decode_status::wrong_size : decode_status::corrupt, 0};
#endif
  }

  produced zstd_decode(std::span<const std::byte> in, std::span<std::byte> out) noexcept {
#if NDSHM_HAVE_ZSTD
    std::size_t n = ZSTD_decompressDCtx(zstd, out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(n))
      return {ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? decode_status::wrong_size
                                                                   : decode_status::corrupt,
              0};
    return {decode_status::ok, n};
#else
    (void)in, (void)out;
    return {decode_status::unsupported, 0};
#endif
  }

  static produced lzf_decode(std::span<const std::byte> in, std::span<std::byte> out) noexcept {
#if NDSHM_HAVE_LZF
    if (in.empty() || in.size() > UINT32_MAX || out.size() > UINT32_MAX)
      return {decode_status::corrupt, 0};
    errno = 0;
    unsigned n = lzf_decompress(in.data(), static_cast<unsigned>(in.size()), out.data(),
                                static_cast<unsigned>(out.size()));
    if (n == 0)
      return {errno == E2BIG ? decode_status::wrong_size : decode_status::corrupt, 0};
    return {decode_status::ok, n};
#else
    (void)in, (void)out;
    return {decode_status::unsupported, 0};
#endif
  }

  static produced blosc_decode(std::span<const std::byte> in, std::span<std::byte> out) noexcept {
#if NDSHM_HAVE_BLOSC
    std::size_t nbytes = 0;
    if (blosc_cbuffer_validate(in.data(), in.size(), &nbytes) != 0)
      return {decode_status::corrupt, 0};
    if (nbytes > out.size())
      return {decode_status::wrong_size, 0};
    // One thread per chunk: the chunks themselves are spread over the threads.
    int n = blosc_decompress_ctx(in.data(), out.data(), out.size(), 1);
    if (n < 0)
      return {decode_status::corrupt, 0};
    return {decode_status::ok, static_cast<std::size_t>(n)};
#else
    (void)in, (void)out;
    return {decode_status::unsupported, 0};
#endif
  }
};

chunk_decoder::chunk_decoder() : m(std::make_unique<state>()) {}
chunk_decoder::chunk_decoder(chunk_decoder &&) noexcept = default;
chunk_decoder &chunk_decoder::operator=(chunk_decoder &&) noexcept = default;
chunk_decoder::~chunk_decoder() = default;

void chunk_decoder::reserve(std::size_t chunk_bytes) {
  for (auto &buffer : m->scratch)
    if (buffer.size() < chunk_bytes + slack)
      buffer.resize(chunk_bytes + slack);
}

decode_result chunk_decoder::decode(std::span<const filter> pipeline, std::uint32_t filter_mask,
                                    std::span<const std::byte> in, std::span<std::byte> out) noexcept {
  const std::size_t want = out.size();
  // The filters to undo, last applied first.
  std::uint32_t steps[32];
  std::size_t count = 0;
  for (std::size_t i = pipeline.size(); i-- > 0;)
    if (i >= 32 || !(filter_mask >> i & 1u)) {
      if (count == 32)
        return {decode_status::unsupported, pipeline[i].id};
      steps[count++] = static_cast<std::uint32_t>(i);
    }
  // The last step writes straight into out when it writes bytes (a checksum step only drops its 4).
  const std::size_t direct = count && pipeline[steps[count - 1]].id != filter_id::fletcher32 ? count - 1 : count;
  std::size_t into_scratch = 0;
  for (std::size_t k = 0; k < count; ++k)
    into_scratch += k != direct && pipeline[steps[k]].id != filter_id::fletcher32;
  if (into_scratch && (m->scratch[0].size() < want + slack || m->scratch[1].size() < want + slack))
    return {decode_status::unsupported, 0}; // reserve() was not called: never allocate here

  std::span<const std::byte> current = in;
  int flip = 0;
  for (std::size_t k = 0; k < count; ++k) {
    const filter &f = pipeline[steps[k]];
    if (f.id == filter_id::fletcher32) {
      if (current.size() < 4)
        return {decode_status::corrupt, f.id};
      const auto body = current.first(current.size() - 4);
      const std::uint32_t stored = load_le32(current.data() + body.size());
      const std::uint32_t sum = fletcher32(body);
      // Files from HDF5 before 1.6.3 hold the sum with the bytes of each half swapped (as HDF5 accepts).
      const std::uint32_t swapped = (sum & 0xff00ff00u) >> 8 | (sum & 0x00ff00ffu) << 8;
      if (stored != sum && stored != swapped)
        return {decode_status::checksum, f.id};
      current = body;
      continue;
    }
    std::span<std::byte> target = k == direct ? out : std::span<std::byte>(m->scratch[flip]);
    flip ^= 1;
    produced r;
    switch (f.id) {
    case filter_id::deflate: r = m->inflate(current, target); break;
    case filter_id::zstd: r = m->zstd_decode(current, target); break;
    case filter_id::lzf: r = state::lzf_decode(current, target); break;
    case filter_id::blosc: r = state::blosc_decode(current, target); break;
    case filter_id::shuffle:
      if (f.values.empty())
        return {decode_status::corrupt, f.id};
      if (current.size() > target.size())
        return {decode_status::wrong_size, f.id};
      unshuffle(current.data(), target.data(), current.size(), f.values[0]);
      r = {decode_status::ok, current.size()};
      break;
    default: return {decode_status::unsupported, f.id};
    }
    if (r.status != decode_status::ok)
      return {r.status, f.id};
    current = std::span<const std::byte>(target.data(), r.size);
  }
  if (current.size() != want)
    return {decode_status::wrong_size, count ? pipeline[steps[count - 1]].id : 0};
  if (current.data() != out.data())
    std::memcpy(out.data(), current.data(), want);
  return {};
}

struct chunk_encoder::state {
  // Kept from chunk to chunk: a new 1 MiB buffer a chunk costs 256 page faults (about 1 ms here).
  std::vector<std::byte> buffers[2];
};

chunk_encoder::chunk_encoder() : m(std::make_unique<state>()) {}
chunk_encoder::chunk_encoder(chunk_encoder &&) noexcept = default;
chunk_encoder &chunk_encoder::operator=(chunk_encoder &&) noexcept = default;
chunk_encoder::~chunk_encoder() = default;

std::uint32_t chunk_encoder::encode(std::span<const filter> pipeline, std::span<const std::byte> in,
                                    std::vector<std::byte> &out) {
  if (pipeline.size() > 32)
    throw std::invalid_argument("ndshm: more than 32 filters");
  std::span<const std::byte> current = in;
  std::uint32_t mask = 0;
  int flip = 0;
  auto value = [](const filter &f, std::size_t i, std::uint32_t otherwise) {
    return i < f.values.size() ? f.values[i] : otherwise;
  };
  for (std::size_t i = 0; i < pipeline.size(); ++i) {
    const filter &f = pipeline[i];
    auto &next = m->buffers[flip];
    auto room = [&](std::size_t n) {
      if (next.size() < n)
        next.resize(n);
    };
    std::size_t size = 0;
    switch (f.id) {
    case filter_id::shuffle:
      room(current.size());
      shuffle(current.data(), next.data(), current.size(), value(f, 0, 1));
      size = current.size();
      break;
    case filter_id::fletcher32: {
      const std::uint32_t sum = fletcher32(current);
      room(current.size() + 4);
      std::memcpy(next.data(), current.data(), current.size());
      for (int b = 0; b < 4; ++b)
        next[current.size() + b] = static_cast<std::byte>(sum >> (8 * b));
      size = current.size() + 4;
      break;
    }
    case filter_id::deflate: {
      uLongf n = compressBound(static_cast<uLong>(current.size()));
      room(n);
      if (compress2(reinterpret_cast<Bytef *>(next.data()), &n, reinterpret_cast<const Bytef *>(current.data()),
                    static_cast<uLong>(current.size()), static_cast<int>(value(f, 0, 6))) != Z_OK)
        throw std::invalid_argument("ndshm: deflate level " + std::to_string(value(f, 0, 6)) + " is not 0-9");
      size = n;
      break;
    }
#if NDSHM_HAVE_ZSTD
    case filter_id::zstd: {
      room(ZSTD_compressBound(current.size()));
      size = ZSTD_compress(next.data(), next.size(), current.data(), current.size(), static_cast<int>(value(f, 0, 3)));
      if (ZSTD_isError(size))
        throw std::invalid_argument(std::string("ndshm: zstd: ") + ZSTD_getErrorName(size));
      break;
    }
#endif
#if NDSHM_HAVE_BLOSC
    case filter_id::blosc: {
      // hdf5plugin's values: filter version, blosc version, type size, chunk bytes, level, shuffle, compressor
      const char *compressor = nullptr;
      if (blosc_compcode_to_compname(static_cast<int>(value(f, 6, 0)), &compressor) < 0)
        throw std::invalid_argument("ndshm: blosc compressor " + std::to_string(value(f, 6, 0)) + " is unknown");
      room(current.size() + BLOSC_MAX_OVERHEAD);
      const int n = blosc_compress_ctx(static_cast<int>(value(f, 4, 5)), static_cast<int>(value(f, 5, 1)),
                                       value(f, 2, 1), current.size(), current.data(), next.data(), next.size(),
                                       compressor, 0, 1);
      if (n <= 0)
        throw std::invalid_argument("ndshm: blosc could not compress a chunk");
      size = static_cast<std::size_t>(n);
      break;
    }
#endif
#if NDSHM_HAVE_LZF
    case filter_id::lzf: {
      room(current.size());
      const unsigned n = current.empty() ? 0
                                         : lzf_compress(current.data(), static_cast<unsigned>(current.size()),
                                                        next.data(), static_cast<unsigned>(current.size()));
      if (n == 0) { // no gain: h5py's lzf filter fails, and HDF5 skips an optional filter that fails
        mask |= 1u << i;
        continue;
      }
      size = n;
      break;
    }
#endif
    default:
      throw std::invalid_argument(std::string("ndshm: ") + filter_name(f.id) + " (filter " + std::to_string(f.id) +
                                  ") is not encoded by this build");
    }
    current = std::span<const std::byte>(next.data(), size);
    flip ^= 1;
  }
  out.assign(current.begin(), current.end());
  return mask;
}

std::vector<encoded_chunk> encode_chunks(std::span<const filter> pipeline, std::span<const std::byte> data,
                                         std::size_t chunk_bytes, unsigned threads) {
  if (chunk_bytes == 0)
    throw std::invalid_argument("ndshm: chunks of 0 bytes");
  const std::size_t count = (data.size() + chunk_bytes - 1) / chunk_bytes;
  std::vector<encoded_chunk> chunks(count);
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(count, 1)));
  std::vector<chunk_encoder> encoders(threads);
  std::vector<std::exception_ptr> errors(threads);
  std::atomic<std::size_t> next{0};
  detail::run_parallel(threads, [&](std::size_t t) {
    try {
      std::vector<std::byte> padded;
      for (std::size_t i = next++; i < count && !errors[t]; i = next++) {
        auto piece = data.subspan(i * chunk_bytes, std::min(chunk_bytes, data.size() - i * chunk_bytes));
        if (piece.size() < chunk_bytes) { // HDF5 stores whole chunks: the part past the data is zeros
          padded.assign(chunk_bytes, std::byte{0});
          std::memcpy(padded.data(), piece.data(), piece.size());
          piece = padded;
        }
        chunks[i].filter_mask = encoders[t].encode(pipeline, piece, chunks[i].bytes);
      }
    } catch (...) {
      errors[t] = std::current_exception();
      next = count; // the others stop too
    }
  });
  for (auto &error : errors)
    if (error)
      std::rethrow_exception(error);
  return chunks;
}

} // namespace ndshm
