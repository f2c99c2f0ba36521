// ndshm._core's HDF5 read-back functions: chunk lists and filter pipelines converted, the GIL released.
#include <cerrno>
#include <cstdint>
#include <span>
#include <tuple>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "ndshm/chunk_reader.hpp"
#include "ndshm/codecs.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

PyObject *g_chunk_error = nullptr;

using filter_tuple = std::tuple<std::uint32_t, std::vector<std::uint32_t>>;
using field_tuple = std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>;

ndshm::dataset_geometry make_geometry(std::vector<std::int64_t> shape, std::vector<std::int64_t> chunk,
                                      std::uint64_t itemsize, std::int64_t row_begin, std::int64_t row_end) {
  return {std::move(shape), std::move(chunk), itemsize, row_begin, row_end};
}

ndshm::element_map make_map(const std::vector<field_tuple> &fields, std::uint64_t out_itemsize) {
  ndshm::element_map map;
  for (const auto &[from, to, size] : fields)
    map.fields.push_back({from, to, size});
  map.out_itemsize = out_itemsize;
  return map;
}

std::vector<ndshm::filter> make_pipeline(const std::vector<filter_tuple> &filters) {
  std::vector<ndshm::filter> pipeline;
  for (const auto &[id, values] : filters)
    pipeline.push_back({id, values});
  return pipeline;
}

std::span<std::byte> output(std::uintptr_t address, std::uint64_t nbytes) {
  return {reinterpret_cast<std::byte *>(address), nbytes};
}

} // namespace

void bind_codecs(nb::module_ &m) {
  g_chunk_error = PyErr_NewExceptionWithDoc(
      "ndshm.ChunkError",
      "A stored HDF5 chunk that cannot be read or decoded: .chunk is its index in the list read, "
      ".reason what is wrong.",
      PyExc_OSError, nullptr);
  m.attr("ChunkError") = nb::handle(g_chunk_error);
  nb::register_exception_translator([](const std::exception_ptr &p, void *) {
    try {
      std::rethrow_exception(p);
    } catch (const ndshm::chunk_error &e) {
      nb::object error = nb::borrow(g_chunk_error)(e.what());
      error.attr("chunk") = e.chunk;
      error.attr("reason") = e.reason;
      PyErr_SetObject(g_chunk_error, error.ptr());
    }
  });

  m.def("decoded_filters", &ndshm::decoded_filters,
        "HDF5 filter ids this build decodes itself (the others are read through h5py).");
  m.def(
      "read_chunked",
      [](const std::string &path, std::vector<std::int64_t> shape, std::vector<std::int64_t> chunk,
         std::uint64_t itemsize, std::int64_t row_begin, std::int64_t row_end, const std::vector<filter_tuple> &filters,
         const std::vector<std::uint64_t> &offsets, const std::vector<std::uint64_t> &sizes,
         const std::vector<std::uint32_t> &masks, const std::vector<std::int64_t> &origins,
         const std::vector<field_tuple> &fields, std::uint64_t out_itemsize, std::uintptr_t address,
         std::uint64_t nbytes, unsigned threads) {
        const std::size_t nd = shape.size();
        if (sizes.size() != offsets.size() || masks.size() != offsets.size() || origins.size() != offsets.size() * nd)
          throw std::invalid_argument("ndshm: chunk lists of different lengths");
        auto pipeline = make_pipeline(filters);
        std::vector<ndshm::stored_chunk> chunks(offsets.size());
        for (std::size_t i = 0; i < chunks.size(); ++i)
          chunks[i] = {offsets[i], sizes[i], masks[i],
                       std::vector<std::int64_t>(origins.begin() + i * nd, origins.begin() + (i + 1) * nd)};
        auto geometry = make_geometry(std::move(shape), std::move(chunk), itemsize, row_begin, row_end);
        auto map = make_map(fields, out_itemsize);
        nb::gil_scoped_release unlocked;
        ndshm::read_chunked(path, geometry, pipeline, chunks, map, output(address, nbytes), threads);
      },
      "path"_a, "shape"_a, "chunk"_a, "itemsize"_a, "row_begin"_a, "row_end"_a, "filters"_a, "offsets"_a,
      "sizes"_a, "masks"_a, "origins"_a, "fields"_a, "out_itemsize"_a, "address"_a, "nbytes"_a, "threads"_a,
      "Reads and decodes stored chunks (file offsets, sizes, filter masks, origins flattened) of rows "
      "[row_begin, row_end) into the buffer at address; fields: (from, to, size) bytes of each element "
      "(empty: all of it). Raises ChunkError for a bad chunk.");
  m.def(
      "read_contiguous",
      [](const std::string &path, std::uint64_t file_offset, std::vector<std::int64_t> shape, std::uint64_t itemsize,
         std::int64_t row_begin, std::int64_t row_end, const std::vector<field_tuple> &fields,
         std::uint64_t out_itemsize, std::uintptr_t address, std::uint64_t nbytes, unsigned threads) {
        auto geometry = make_geometry(std::move(shape), {}, itemsize, row_begin, row_end);
        auto map = make_map(fields, out_itemsize);
        nb::gil_scoped_release unlocked;
        ndshm::read_contiguous(path, file_offset, geometry, map, output(address, nbytes), threads);
      },
      "path"_a, "file_offset"_a, "shape"_a, "itemsize"_a, "row_begin"_a, "row_end"_a, "fields"_a,
      "out_itemsize"_a, "address"_a, "nbytes"_a, "threads"_a,
      "Reads rows [row_begin, row_end) of a contiguous dataset stored from file_offset into the buffer at address.");
  m.def(
      "encode_chunks",
      [](const std::vector<filter_tuple> &filters,
         nb::ndarray<const std::uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> data, std::uint64_t chunk_bytes,
         unsigned threads) {
        auto pipeline = make_pipeline(filters);
        std::vector<ndshm::encoded_chunk> chunks;
        {
          nb::gil_scoped_release unlocked;
          chunks = ndshm::encode_chunks(pipeline, {reinterpret_cast<const std::byte *>(data.data()), data.size()},
                                        chunk_bytes, threads);
        }
        nb::list result;
        for (const auto &c : chunks)
          result.append(nb::make_tuple(nb::bytes(reinterpret_cast<const char *>(c.bytes.data()), c.bytes.size()),
                                       c.filter_mask));
        return result;
      },
      "filters"_a, "data"_a, "chunk_bytes"_a, "threads"_a,
      "Cuts data (bytes as a 1-d uint8 array) into chunks of chunk_bytes, the last padded with zeros, and "
      "encodes them through filters on threads threads: [(stored bytes, filter mask)], for write_direct_chunk.");
}
