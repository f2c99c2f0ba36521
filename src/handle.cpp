// Formatting and parsing of handle strings (see ndshm/handle.hpp for the format).
#include "ndshm/handle.hpp"

#include <charconv>
#include <stdexcept>

namespace ndshm {
namespace {

constexpr std::string_view magic = "ndshm2";

std::string join(const std::vector<std::int64_t> &values) {
  std::string text;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i != 0)
      text += ',';
    text += std::to_string(values[i]);
  }
  return text;
}

[[noreturn]] void malformed(std::string_view text, std::string_view part) {
  std::string shown(text.substr(0, 120));
  throw std::invalid_argument("ndshm: malformed handle '" + shown + (text.size() > 120 ? "...'" : "'") +
                              ": bad " + std::string(part));
}

template <class T> T number(std::string_view text, std::string_view field, std::string_view part) {
  T value{};
  auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (ec != std::errc() || end != field.data() + field.size() || field.empty())
    malformed(text, part);
  return value;
}

std::vector<std::int64_t> numbers(std::string_view text, std::string_view field, std::string_view part) {
  std::vector<std::int64_t> values;
  while (!field.empty()) {
    auto comma = field.find(',');
    values.push_back(number<std::int64_t>(text, field.substr(0, comma), part));
    if (comma == std::string_view::npos)
      break;
    field.remove_prefix(comma + 1);
    if (field.empty())
      malformed(text, part);
  }
  return values;
}

} // namespace

bool valid_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 200)
    return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

std::string array_handle::to_string() const {
  return std::string(magic) + ':' + session + ':' + name + ':' + std::to_string(ticket) + ':' +
         std::to_string(offset) + ':' +
         std::to_string(itemsize) + ':' + join(shape) + ':' + join(strides) + ':' + descr;
}

array_handle array_handle::parse(std::string_view text) {
  std::string_view fields[9];
  std::string_view rest = text;
  for (int i = 0; i < 8; ++i) {
    auto colon = rest.find(':');
    if (colon == std::string_view::npos)
      malformed(text, i == 0 ? "prefix (expected 'ndshm2:...')" : "number of fields");
    fields[i] = rest.substr(0, colon);
    rest.remove_prefix(colon + 1);
    if (i == 0 && fields[0] != magic) // before counting fields: a version 1 handle has one less
      malformed(text, "prefix (expected 'ndshm2:...')");
  }
  fields[8] = rest;
  array_handle h;
  h.session = std::string(fields[1]);
  h.name = std::string(fields[2]);
  if (!valid_name(h.session))
    malformed(text, "session name");
  if (!valid_name(h.name))
    malformed(text, "segment name");
  h.ticket = number<std::uint64_t>(text, fields[3], "ticket");
  h.offset = number<std::uint64_t>(text, fields[4], "offset");
  h.itemsize = number<std::uint64_t>(text, fields[5], "itemsize");
  h.shape = numbers(text, fields[6], "shape");
  h.strides = numbers(text, fields[7], "strides");
  h.descr = std::string(fields[8]);
  if (h.shape.size() != h.strides.size())
    malformed(text, "strides (not one per dimension)");
  for (auto n : h.shape)
    if (n < 0)
      malformed(text, "shape (negative)");
  if (h.descr.empty())
    malformed(text, "descr (empty)");
  return h;
}

std::pair<std::int64_t, std::int64_t> array_handle::extent() const {
  auto low = static_cast<std::int64_t>(offset), high = low;
  for (auto n : shape)
    if (n == 0)
      return {low, low};
  for (std::size_t i = 0; i < shape.size(); ++i) {
    std::int64_t span = (shape[i] - 1) * strides[i];
    (span < 0 ? low : high) += span;
  }
  return {low, high + static_cast<std::int64_t>(itemsize)};
}

} // namespace ndshm
