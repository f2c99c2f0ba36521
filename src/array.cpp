// Shared arrays for C++ programs, over create_segment/attach_segment.
#include "ndshm/array.hpp"

#include <charconv>
#include <stdexcept>

#include "ndshm/session.hpp"

namespace ndshm {
namespace {

std::string shape_text(const std::vector<std::int64_t> &shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

} // namespace

std::size_t itemsize_of(std::string_view typestr) {
  auto bad = [&] {
    return std::invalid_argument("ndshm: cannot tell the item size of '" + std::string(typestr) +
                                 "'; pass itemsize explicitly");
  };
  if (typestr.size() < 3 || std::string_view("<>|=").find(typestr[0]) == std::string_view::npos)
    throw bad();
  std::size_t count = 0;
  auto digits = typestr.substr(2);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
  if (ec != std::errc() || end != digits.data() + digits.size())
    throw bad();
  switch (typestr[1]) {
  case 'b': case 'i': case 'u': case 'f': case 'c': case 'S': case 'V': case 'm': case 'M':
    return count;
  case 'U':
    return 4 * count;
  default:
    throw bad();
  }
}

shared_array create_array(std::string descr, std::vector<std::int64_t> shape, std::size_t itemsize,
                          std::string session) {
  if (itemsize == 0)
    itemsize = itemsize_of(descr);
  std::uint64_t count = 1;
  for (auto n : shape) {
    if (n < 0)
      throw std::invalid_argument("ndshm: negative dimension in shape " + shape_text(shape));
    count *= static_cast<std::uint64_t>(n);
  }
  std::vector<std::int64_t> strides(shape.size());
  auto step = static_cast<std::int64_t>(itemsize);
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = step;
    step *= shape[i];
  }
  segment_options options;
  options.size = count * itemsize;
  options.session = std::move(session);
  options.meta = {descr, shape_text(shape)};
  auto segment = create_segment(options);
  array_handle layout{segment->session(), segment->name(), 0, 0, itemsize, std::move(shape),
                      std::move(strides), std::move(descr)};
  return {std::move(segment), std::move(layout)};
}

std::string share(const shared_array &array, bool persist) {
  array_handle layout = array.layout;
  layout.ticket = issue_ticket(*array.segment, persist);
  return layout.to_string();
}

shared_array attach_array(std::string_view handle, access mode) {
  array_handle layout = array_handle::parse(handle);
  auto segment = attach_segment(layout.session, layout.name, mode, layout.ticket);
  auto [low, high] = layout.extent();
  if (low < 0 || static_cast<std::uint64_t>(high) > segment->size())
    throw std::invalid_argument("ndshm: handle '" + std::string(handle.substr(0, 120)) +
                                "' describes bytes outside its segment of " +
                                std::to_string(segment->size()) + " bytes");
  return {std::move(segment), std::move(layout)};
}

} // namespace ndshm
