// ndshm._core's HDF5 read-back functions: chunk lists and filter pipelines converted, the GIL released.
#include <cerrno>
#include <cstdint>
#include <span>
#include <tuple>
#include <vector>

#include <nanobind/nanobind.h>
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
        std::vector<ndshm::filter> pipeline;
        for (const auto &[id, values] : filters)
          pipeline.push_back({id, values});
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
}
