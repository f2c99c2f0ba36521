// Shared arrays for C++ programs: create one that Python attaches by handle, or attach Python's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ndshm/handle.hpp"
#include "ndshm/mapping.hpp"

namespace ndshm {

/// An n-dimensional array over a shared segment.
struct shared_array {
  std::shared_ptr<mapping> segment;
  array_handle layout;

  /// Address of the first element.
  [[nodiscard]] std::byte *data() const noexcept { return segment->data() + layout.offset; }
  template <class T> [[nodiscard]] T *data_as() const noexcept { return reinterpret_cast<T *>(data()); }
};

/// Item size of a simple NumPy typestr ("<f8", "|i1", "|S10", "<U4", "|b1"); throws std::invalid_argument.
[[nodiscard]] std::size_t itemsize_of(std::string_view typestr);

/// A new C-contiguous array in shared memory. itemsize 0: taken from descr (simple typestrs only).
[[nodiscard]] shared_array create_array(std::string descr, std::vector<std::int64_t> shape,
                                        std::size_t itemsize = 0, std::string session = {});

/// Issues a ticket (see issue_ticket) and returns the handle another process (C++ or Python) attaches with.
[[nodiscard]] std::string share(const shared_array &array, bool persist = false);

/// Attaches a handle made by share() or ndshm.handle(), redeeming its ticket. Checks the view fits the segment.
[[nodiscard]] shared_array attach_array(std::string_view handle, access mode = access::read_write);

} // namespace ndshm
