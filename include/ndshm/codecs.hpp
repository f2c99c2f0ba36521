// The codecs of HDF5's filter pipeline that ndshm decodes itself: deflate, shuffle, fletcher32, and where
// their libraries were found at build time lzf, zstd (hdf5plugin's filter 32015) and blosc (32001).
//
// Hot path: a chunk_decoder per thread; decode() returns a status, never throws, never allocates once
// its buffers have grown to the chunk size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace ndshm {

/// HDF5 filter identifiers (H5Zpublic.h and The HDF Group's registry of third-party filters).
namespace filter_id {
inline constexpr std::uint32_t deflate = 1;
inline constexpr std::uint32_t shuffle = 2;
inline constexpr std::uint32_t fletcher32 = 3;
inline constexpr std::uint32_t lzf = 32000;
inline constexpr std::uint32_t blosc = 32001;
inline constexpr std::uint32_t zstd = 32015;
} // namespace filter_id

/// One filter of a dataset's pipeline, as H5Pget_filter reports it.
struct filter {
  std::uint32_t id = 0;
  std::vector<std::uint32_t> values; ///< the filter's client data (cd_values)
};

/// True if this build decodes filter id itself (deflate, shuffle and fletcher32 always).
[[nodiscard]] bool decodes(std::uint32_t id) noexcept;
/// The filter ids this build decodes, in increasing order.
[[nodiscard]] std::vector<std::uint32_t> decoded_filters();

/// What went wrong decoding a chunk (hot path: a code, no exception).
enum class decode_status : std::uint8_t {
  ok,
  corrupt,        ///< the codec rejected the data
  wrong_size,     ///< the data decoded to another size than the chunk's
  checksum,       ///< fletcher32 mismatch
  unsupported,    ///< a filter this build does not decode
};

/// Words for a status, for error messages ("deflate data is corrupt").
[[nodiscard]] std::string describe(decode_status status, std::uint32_t filter);

struct decode_result {
  decode_status status = decode_status::ok;
  std::uint32_t filter = 0; ///< the filter that failed
};

/// HDF5's fletcher32 checksum (H5_checksum_fletcher32: big-endian 16-bit words, an odd byte padded).
[[nodiscard]] std::uint32_t fletcher32(std::span<const std::byte> data) noexcept;

/// HDF5's shuffle: byte k of every element together. size is any byte count; a tail shorter than one
/// element stays in place.
void shuffle(const std::byte *in, std::byte *out, std::size_t size, std::size_t element) noexcept;
/// The inverse of shuffle.
void unshuffle(const std::byte *in, std::byte *out, std::size_t size, std::size_t element) noexcept;

/// Decodes chunks through a dataset's pipeline, on one thread: keeps its codec state and scratch buffers.
class chunk_decoder {
public:
  chunk_decoder();
  chunk_decoder(chunk_decoder &&) noexcept;
  chunk_decoder &operator=(chunk_decoder &&) noexcept;
  ~chunk_decoder();

  /// Reserves scratch for chunks of chunk_bytes decoded bytes (throws std::bad_alloc; call before
  /// the hot loop).
  void reserve(std::size_t chunk_bytes);

  /// Undoes pipeline (applied first to last when written) on in, skipping filter i where bit i of
  /// filter_mask is set, into out, which must come out exactly out.size() bytes. No throw; no
  /// allocation after reserve(out.size()).
  [[nodiscard]] decode_result decode(std::span<const filter> pipeline, std::uint32_t filter_mask,
                                     std::span<const std::byte> in, std::span<std::byte> out) noexcept;

private:
  struct state;
  std::unique_ptr<state> m;
};

/// Applies a pipeline to chunks as HDF5 would write them (chunks compressed on all cores, then written
/// with H5Dwrite_chunk), on one thread.
class chunk_encoder {
public:
  chunk_encoder();
  chunk_encoder(chunk_encoder &&) noexcept;
  chunk_encoder &operator=(chunk_encoder &&) noexcept;
  ~chunk_encoder();

  /// Encodes in through pipeline (first to last) into out; returns the chunk's filter mask: bit i set
  /// where an optional filter (lzf) did not shrink the data and was skipped, as HDF5 does. Throws
  /// std::invalid_argument for a filter this build does not encode or bad filter values.
  std::uint32_t encode(std::span<const filter> pipeline, std::span<const std::byte> in, std::vector<std::byte> &out);

private:
  struct state;
  std::unique_ptr<state> m;
};

/// One chunk as encode_chunks made it: its stored bytes and filter mask.
struct encoded_chunk {
  std::vector<std::byte> bytes;
  std::uint32_t filter_mask = 0;
};

/// Cuts data into chunks of chunk_bytes (the last padded with zeros to a whole chunk, as HDF5 stores
/// it) and encodes each through pipeline on `threads` threads (0: all cores). Throws
/// std::invalid_argument as chunk_encoder::encode does.
[[nodiscard]] std::vector<encoded_chunk> encode_chunks(std::span<const filter> pipeline, std::span<const std::byte> data,
                                                       std::size_t chunk_bytes, unsigned threads);

} // namespace ndshm
