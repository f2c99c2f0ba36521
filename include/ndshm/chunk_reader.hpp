// An HDF5 dataset's stored bytes read back on all cores: chunks read from the file, decoded
// (ndshm/codecs.hpp) and copied into a caller's C-contiguous array, one thread per chunk at a time.
//
// The caller (h5py, in Python) says where the chunks are, what the filters are and that the file's
// element type is byte for byte the array's; this file never parses HDF5 metadata.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ndshm/codecs.hpp"

namespace ndshm {

/// A dataset's shape and chunking, and the rows (first dimension) to read.
struct dataset_geometry {
  std::vector<std::int64_t> shape; ///< the dataset's dimensions (at least one)
  std::vector<std::int64_t> chunk; ///< chunk dimensions; unused for a contiguous dataset
  std::uint64_t itemsize = 0;      ///< bytes of one element, in the file and in memory alike
  std::int64_t row_begin = 0;      ///< first row read
  std::int64_t row_end = 0;        ///< one past the last row read
};

/// Bytes of each element copied to the output element (fields of a compound type).
struct field_copy {
  std::uint64_t from = 0; ///< offset in the stored element
  std::uint64_t to = 0;   ///< offset in the output element
  std::uint64_t size = 0;
};

/// How a stored element becomes an output element: no fields means all of it as it is.
struct element_map {
  std::vector<field_copy> fields;
  std::uint64_t out_itemsize = 0; ///< 0: the stored itemsize
};

/// One stored chunk, as H5Dchunk_iter reports it.
struct stored_chunk {
  std::uint64_t file_offset = 0;
  std::uint64_t size = 0;
  std::uint32_t filter_mask = 0;
  std::vector<std::int64_t> origin; ///< coordinates of its first element
};

/// A chunk that could not be read or decoded: which (index into the caller's list) and why.
class chunk_error : public std::runtime_error {
public:
  chunk_error(std::size_t chunk, std::string reason);
  std::size_t chunk;
  std::string reason;
};

/// Reads chunks of the dataset at path into out: rows [row_begin, row_end) x shape[1:], C order,
/// element_map's output itemsize. Chunks outside those rows are skipped; elements no chunk covers
/// are left as they are. threads 0: all cores. Throws chunk_error for the first chunk found bad
/// (others stop soon after), std::system_error if the file cannot be opened, std::invalid_argument
/// for a geometry that does not fit out or a filter this build does not decode.
void read_chunked(const std::string &path, const dataset_geometry &geometry, std::span<const filter> pipeline,
                  std::span<const stored_chunk> chunks, const element_map &map, std::span<std::byte> out,
                  unsigned threads);

/// Reads rows [row_begin, row_end) of a contiguous dataset stored from file_offset into out, in
/// pieces spread over threads. Throws std::system_error (a short file: EIO).
void read_contiguous(const std::string &path, std::uint64_t file_offset, const dataset_geometry &geometry,
                     const element_map &map, std::span<std::byte> out, unsigned threads);

} // namespace ndshm
