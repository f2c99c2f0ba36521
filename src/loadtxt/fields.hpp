// Hot-path field conversion: no throw, no allocation; a bool says whether the text was valid.
#pragma once

#include <bit>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>

#include "ndshm/loadtxt.hpp"

namespace ndshm::detail {

[[nodiscard]] constexpr bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

[[nodiscard]] inline std::string_view strip(std::string_view text) noexcept {
  while (!text.empty() && is_space(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_space(text.back()))
    text.remove_suffix(1);
  return text;
}

template <class T> void store(std::byte *out, T value, bool swap) noexcept {
  if (swap) {
    if constexpr (sizeof(T) == 2)
      value = std::bit_cast<T>(__builtin_bswap16(std::bit_cast<std::uint16_t>(value)));
    else if constexpr (sizeof(T) == 4)
      value = std::bit_cast<T>(__builtin_bswap32(std::bit_cast<std::uint32_t>(value)));
    else if constexpr (sizeof(T) == 8)
      value = std::bit_cast<T>(__builtin_bswap64(std::bit_cast<std::uint64_t>(value)));
  }
  std::memcpy(out, &value, sizeof(T));
}

/// numpy's integer grammar: optional spaces, optional sign, digits, optional spaces. Hand-written:
/// std::from_chars plus the sign and space handling took 17 % of a coverage-file parse (perf).
template <class T> [[nodiscard]] bool parse_integer(std::string_view text, T &value) noexcept {
  const char *p = text.data();
  const char *e = p + text.size();
  while (p < e && is_space(*p))
    ++p;
  while (e > p && is_space(e[-1]))
    --e;
  bool negative = false;
  if (p < e && (*p == '+' || *p == '-')) {
    negative = *p == '-';
    ++p;
  }
  if (p == e)
    return false;
  std::uint64_t magnitude = 0;
  for (; p < e; ++p) {
    auto digit = static_cast<unsigned>(static_cast<unsigned char>(*p) - '0');
    if (digit > 9 || __builtin_mul_overflow(magnitude, 10u, &magnitude) ||
        __builtin_add_overflow(magnitude, digit, &magnitude))
      return false;
  }
  if constexpr (std::is_unsigned_v<T>) {
    if (negative)
      return false;
    value = magnitude;
  } else {
    constexpr auto limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (magnitude > limit + (negative ? 1 : 0))
      return false;
    value = negative ? static_cast<T>(0 - magnitude) : static_cast<T>(magnitude);
  }
  return true;
}

/// Python's float(): spaces, sign, decimal or inf/infinity/nan in any case; correctly rounded.
[[nodiscard]] inline bool parse_double(std::string_view text, double &value) noexcept {
  text = strip(text);
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text.empty() || text.front() == '+' || text.front() == '-')
    return false;
  if (text.size() > 3 && (text[3] == '(')) // from_chars takes "nan(...)"; Python does not
    return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::general);
  if (end != text.data() + text.size())
    return false;
  if (ec == std::errc::result_out_of_range) {
    // Python rounds overflow to inf and underflow to 0; from_chars reports both as errors and leaves
    // value alone. glibc's strtod (correctly rounded too) gives the right limit; this path is rare.
    char buffer[128];
    if (text.size() >= sizeof buffer)
      return false;
    std::memcpy(buffer, text.data(), text.size());
    buffer[text.size()] = '\0';
    value = std::strtod(buffer, nullptr);
  } else if (ec != std::errc()) {
    return false;
  }
  value = negative ? -value : value;
  return true;
}

/// Converts one field into out; false if the text does not fit the field's type.
[[nodiscard]] inline bool convert(const field_spec &field, std::string_view text, std::byte *out) noexcept {
  switch (field.kind) {
  case field_kind::floating: {
    double value = 0;
    if (!parse_double(text, value))
      return false;
    if (field.size == 4)
      store(out, static_cast<float>(value), field.big_endian); // numpy: parse as double, then cast
    else
      store(out, value, field.big_endian);
    return true;
  }
  case field_kind::signed_int:
  case field_kind::boolean: {
    std::int64_t value = 0;
    if (!parse_integer(text, value))
      return false;
    if (field.kind == field_kind::boolean) {
      store(out, static_cast<std::uint8_t>(value != 0), false);
      return true;
    }
    switch (field.size) {
    case 1:
      if (value < INT8_MIN || value > INT8_MAX)
        return false;
      store(out, static_cast<std::int8_t>(value), false);
      return true;
    case 2:
      if (value < INT16_MIN || value > INT16_MAX)
        return false;
      store(out, static_cast<std::int16_t>(value), field.big_endian);
      return true;
    case 4:
      if (value < INT32_MIN || value > INT32_MAX)
        return false;
      store(out, static_cast<std::int32_t>(value), field.big_endian);
      return true;
    default:
      store(out, value, field.big_endian);
      return true;
    }
  }
  case field_kind::unsigned_int: {
    std::uint64_t value = 0;
    if (!parse_integer(text, value))
      return false;
    switch (field.size) {
    case 1:
      if (value > UINT8_MAX)
        return false;
      store(out, static_cast<std::uint8_t>(value), false);
      return true;
    case 2:
      if (value > UINT16_MAX)
        return false;
      store(out, static_cast<std::uint16_t>(value), field.big_endian);
      return true;
    case 4:
      if (value > UINT32_MAX)
        return false;
      store(out, static_cast<std::uint32_t>(value), field.big_endian);
      return true;
    default:
      store(out, value, field.big_endian);
      return true;
    }
  }
  case field_kind::bytes: {
    std::size_t n = std::min<std::size_t>(text.size(), field.size);
    std::memcpy(out, text.data(), n);
    std::memset(out + n, 0, field.size - n);
    return true; // length is checked by the caller, which knows the truncation policy
  }
  }
  return false;
}

} // namespace ndshm::detail
