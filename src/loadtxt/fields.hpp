// Hot-path field conversion: no throw, no allocation; a bool says whether the text was valid.
#pragma once

#include <array>
#include <bit>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>

#include "ndshm/loadtxt.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ndshm::detail {

[[nodiscard]] constexpr bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/// What numpy strips around a number (Python's str.isspace in ASCII): is_space's, '\n' (which a
/// quoted field may hold) and '\x1c'..'\x1f'.
[[nodiscard]] constexpr bool is_number_space(char c) noexcept {
  return is_space(c) || c == '\n' || (c >= '\x1c' && c <= '\x1f');
}

[[nodiscard]] inline std::string_view strip(std::string_view text) noexcept {
  while (!text.empty() && is_number_space(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_number_space(text.back()))
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

// Eight characters at a time ("SWAR": SIMD within a register). Digit runs of unknown length cost one
// mispredicted branch per character loop exit; these read 8 bytes, find the run's length with bit
// arithmetic and convert up to 8 digits with three multiplications. Callers guarantee the bytes read
// are readable (the text goes on past the field: no page boundary issue). They and the plain scanners
// below are always inlined: with the row program compiled for each column count, GCC -O3 (the wheel's
// build) left scan_plain_integer/decimal out of line (first seen as 3.8 s instead of 2.8 s per GB, one
// thread, installed package). Again 2026-11-26, bench/parse_bench.cpp built -DCMAKE_BUILD_TYPE=Release,
// 300 MB of coverage text, one thread, 3 interleaved pairs, best of 3: 0.55-0.64 s inlined, 0.58-0.73 s
// without the attribute.
static_assert(std::endian::native == std::endian::little, "the SWAR digit code assumes little endian");

/// Bytes p[0..8) minus '0' each: digit values where the bytes are digits.
[[nodiscard, gnu::always_inline]] inline std::uint64_t digit_bytes(const char *p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v ^ 0x3030303030303030ULL;
}

/// How many of the 8 bytes (from the lowest) are digits before the first non-digit.
[[nodiscard, gnu::always_inline]] inline unsigned leading_digits(std::uint64_t x) noexcept {
  // a byte's top bit ends up set iff its value (x = byte ^ '0') is not 0..9; no carries between bytes
  std::uint64_t other = (((x & 0x7F7F7F7F7F7F7F7FULL) + 0x7676767676767676ULL) | x) & 0x8080808080808080ULL;
  return other != 0 ? static_cast<unsigned>(std::countr_zero(other)) >> 3 : 8;
}

/// The number written by the first n (1..8) digit bytes of x.
[[nodiscard, gnu::always_inline]] inline std::uint64_t digits_value(std::uint64_t x, unsigned n) noexcept {
  x <<= 8 * (8 - n); // right-align: the vacated low bytes read as leading zeros
  x = (x * 2561) >> 8;
  x = ((x & 0x00FF00FF00FF00FFULL) * 6553601) >> 16;
  return ((x & 0x0000FFFF0000FFFFULL) * 42949672960001ULL) >> 32;
}

/// A run of up to 15 digits at p: its value and length (0 if none; 16 means "15 or more": give up).
[[nodiscard, gnu::always_inline]] inline unsigned scan_digits(const char *p, std::uint64_t &value) noexcept {
  static constexpr std::uint64_t powers[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};
  std::uint64_t x = digit_bytes(p);
  unsigned n = leading_digits(x);
  if (n < 8) {
    value = n != 0 ? digits_value(x, n) : 0;
    return n;
  }
  std::uint64_t y = digit_bytes(p + 8);
  unsigned m = leading_digits(y);
  if (m == 8)
    return 16;
  value = digits_value(x, 8) * powers[m] + (m != 0 ? digits_value(y, m) : 0);
  return 8 + m;
}

/// Clinger's fast path over a number at the start of [p, e): up to 19 significant digits and a power
/// of ten up to 22 need one exact multiplication or division, so the result is correctly rounded.
/// Returns the end of the number, or nullptr if it is not that simple (the general parser decides).
[[nodiscard]] inline const char *scan_short_decimal(const char *p, const char *e, double &value) noexcept {
  static constexpr double powers[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  bool negative = false;
  if (p < e && (*p == '-' || *p == '+')) {
    negative = *p == '-';
    ++p;
  }
  std::uint64_t mantissa = 0;
  int digits = 0, exponent = 0;
  const char *start = p;
  while (p < e && static_cast<unsigned>(*p - '0') <= 9) {
    mantissa = mantissa * 10 + static_cast<unsigned>(*p - '0');
    ++digits;
    ++p;
  }
  bool any = p != start;
  if (p < e && *p == '.') {
    ++p;
    const char *fraction = p;
    while (p < e && static_cast<unsigned>(*p - '0') <= 9) {
      mantissa = mantissa * 10 + static_cast<unsigned>(*p - '0');
      ++digits;
      ++p;
    }
    exponent = -static_cast<int>(p - fraction);
    any = any || p != fraction;
  }
  if (!any || digits > 19)
    return nullptr;
  if (p < e && (*p == 'e' || *p == 'E')) {
    ++p;
    bool minus = false;
    if (p < e && (*p == '-' || *p == '+')) {
      minus = *p == '-';
      ++p;
    }
    const char *first = p;
    int power = 0;
    while (p < e && static_cast<unsigned>(*p - '0') <= 9 && power < 10000) {
      power = power * 10 + (*p - '0');
      ++p;
    }
    if (p == first)
      return nullptr;
    exponent += minus ? -power : power;
  }
  if (mantissa > (std::uint64_t{1} << 53) || exponent < -22 || exponent > 22)
    return nullptr;
  double m = static_cast<double>(mantissa);
  value = exponent < 0 ? m / powers[-exponent] : m * powers[exponent];
  value = negative ? -value : value;
  return p;
}

/// The inverses of 5^k modulo 2^64: a multiple of 10^k shifted right by k and multiplied by the k-th
/// is divided by 10^k exactly.
inline constexpr auto inverse_powers_of_five = [] {
  std::array<std::uint64_t, 17> inverses{};
  std::uint64_t power = 1;
  for (auto &inverse : inverses) {
    std::uint64_t x = power; // Newton's iteration: each step doubles the correct low bits (5 -> 64)
    for (int i = 0; i < 5; ++i)
      x *= 2 - power * x;
    inverse = x;
    power *= 5;
  }
  return inverses;
}();

#if defined(__SSE2__)
/// 16 bytes: those from i (0..16) on set (0xFF), those before it clear; one load.
[[nodiscard, gnu::always_inline]] inline __m128i bytes_from(unsigned i) noexcept {
  static constexpr auto ramp = [] {
    std::array<char, 32> bytes{};
    for (std::size_t k = 16; k < 32; ++k)
      bytes[k] = static_cast<char>(0xFF);
    return bytes;
  }();
  return _mm_loadu_si128(reinterpret_cast<const __m128i *>(ramp.data() + 16 - i));
}
#endif

/// The common shape of a decimal at p: [sign] digits [. digits] with 1 to 15 digits (exact in a
/// double, and 10^m too, so one division rounds correctly: Python's float()), 15 bytes at most (its
/// end must fall within the 16 bytes loaded). Returns the byte after it, or nullptr for any other
/// shape (the general parser decides). Reads 16 bytes (34 without SSE2).
[[nodiscard, gnu::always_inline]] inline const char *scan_plain_decimal(const char *p,
                                                                       double &value) noexcept {
  static constexpr double powers[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
#if defined(__SSE2__)
  // The number's end is found from one 16-byte load: the first byte that is no digit (after a sign),
  // and, if it is the point, the next. The next column waits for that end; the digits' values are
  // worked out beside it. The sign costs no branch: in a matrix of random signs, the branch that
  // scan_plain_integer takes cost more than it saved (bench/parse_bench.cpp, RelWithDebInfo, 300 MB
  // of the matrix file, 8 interleaved rounds, median: 0.574 s this way; 0.699 s with the two digit
  // scans of the #else branch and a sign branch; 0.665 s with the sign tested before the digits). On
  // coverage text, 10 rounds: 0.498 s this way, 0.472 s with the two scans and the sign branch.
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
  const __m128i d = _mm_sub_epi8(v, _mm_set1_epi8('0'));
  const auto digits = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d)));
  const auto points = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('.'))));
  const bool negative = *p == '-';
  const unsigned sign = negative || *p == '+' ? 1 : 0;
  const unsigned stops = (~digits & 0xFFFFu) & ~sign; // (a sign in front stops nothing)
  const unsigned a = static_cast<unsigned>(std::countr_zero(stops | 0x10000u)); // the whole part's end
  const bool point = ((points >> a) & 1) != 0;
  const unsigned b = static_cast<unsigned>(std::countr_zero((stops & (stops - 1)) | 0x10000u)); // after it
  const unsigned end = point ? b : a;
  const unsigned n = a - sign, m = point ? b - a - 1 : 0;
  if (end >= 16 || n + m - 1 >= 15) // past the 16 bytes, no digit, or more than 15
    return nullptr;
  // The digits' value off that chain, all 16 bytes at once: the point taken out (the bytes after it
  // moved down one), the bytes that are no digits of the number zeroed, then the digit at byte i
  // weighted 10^(15 - i) in three multiply-adds; the zeros the weights put after the last digit are
  // divided out exactly. Fewer instructions than two 8-byte conversions (bench/parse_instructions.sh).
  const __m128i moved = bytes_from(point ? a : 16);
  const __m128i closed = _mm_or_si128(_mm_and_si128(moved, _mm_srli_si128(d, 1)), _mm_andnot_si128(moved, d));
  const unsigned k = n + m;
  const __m128i kept = _mm_and_si128(closed, _mm_andnot_si128(bytes_from(sign + k), bytes_from(sign)));
  const __m128i zero = _mm_setzero_si128();
  const __m128i tens = _mm_set1_epi32(0x0001000A), hundreds = _mm_set1_epi32(0x00010064),
                myriads = _mm_set1_epi32(0x00012710);
  const __m128i pairs = _mm_packs_epi32(_mm_madd_epi16(_mm_unpacklo_epi8(kept, zero), tens),
                                        _mm_madd_epi16(_mm_unpackhi_epi8(kept, zero), tens));
  const __m128i fours = _mm_madd_epi16(pairs, hundreds);
  const __m128i eights = _mm_madd_epi16(_mm_packs_epi32(fours, fours), myriads);
  const auto both = static_cast<std::uint64_t>(_mm_cvtsi128_si64(eights));
  const std::uint64_t weighted = (both & 0xFFFFFFFFu) * 100000000 + (both >> 32);
  const unsigned zeros = 16 - sign - k;
  const std::uint64_t mantissa = (weighted >> zeros) * inverse_powers_of_five[zeros];
  const char *q = p + end;
#else
  static constexpr std::uint64_t scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
                                            1000000000, 10000000000, 100000000000, 1000000000000,
                                            10000000000000, 100000000000000, 1000000000000000};
  bool negative = false;
  const char *q = p;
  std::uint64_t whole = 0, fraction = 0;
  unsigned n = scan_digits(q, whole), m = 0;
  if (n == 0 && (*p == '-' || *p == '+')) [[unlikely]] { // (see scan_plain_integer)
    negative = *p == '-';
    n = scan_digits(++q, whole);
  }
  q += n;
  if (*q == '.') {
    m = scan_digits(q + 1, fraction);
    q += 1 + m;
  }
  if (n + m - 1 >= 15) // no digit, or more than 15
    return nullptr;
  const std::uint64_t mantissa = whole * scale[m] + fraction;
#endif
  // (as a signed integer, which it fits: one conversion instruction, where an unsigned one takes eight)
  double magnitude = static_cast<double>(static_cast<std::int64_t>(mantissa)) / powers[m];
  // The sign as a bit, not `negative ? -magnitude : magnitude`, which GCC 12 compiled to a branch:
  // in the matrix file's random signs callgrind's branch model missed it 5 times a row (99,853 of
  // 20,000 rows; 29 this way). bench/parse_bench.cpp, 50 MB, 30 alternations: median 0.977 of the
  // time, within the noise (quartiles 0.965 and 1.012); its instructions moved with GCC's allocation.
  value = std::bit_cast<double>(std::bit_cast<std::uint64_t>(magnitude) | std::uint64_t{negative} << 63);
  return q;
}

/// Digits (after an optional sign) at the start of [p, e), as a magnitude; nullptr on overflow or none.
[[nodiscard]] inline const char *scan_integer(const char *p, const char *e, bool &negative,
                                              std::uint64_t &magnitude) noexcept {
  negative = false;
  if (p < e && (*p == '+' || *p == '-')) {
    negative = *p == '-';
    ++p;
  }
  const char *start = p;
  magnitude = 0;
  // 19 digits always fit in 64 bits: check for overflow only past them.
  const char *unchecked = e - p > 19 ? p + 19 : e;
  for (; p < unchecked; ++p) {
    auto digit = static_cast<unsigned>(static_cast<unsigned char>(*p) - '0');
    if (digit > 9)
      return p == start ? nullptr : p;
    magnitude = magnitude * 10 + digit;
  }
  for (; p < e; ++p) {
    auto digit = static_cast<unsigned>(static_cast<unsigned char>(*p) - '0');
    if (digit > 9)
      break;
    if (__builtin_mul_overflow(magnitude, 10u, &magnitude) || __builtin_add_overflow(magnitude, digit, &magnitude))
      return nullptr;
  }
  return p == start ? nullptr : p;
}

/// The common shape of an integer at p, 8 digits at a time: [sign] 1 to 15 digits. Returns the byte
/// after it, or nullptr for any other shape (scan_integer decides). Reads up to 17 bytes.
[[nodiscard, gnu::always_inline]] inline const char *scan_plain_integer(const char *p, bool &negative,
                                                                       std::uint64_t &magnitude) noexcept {
  negative = false;
  const char *q = p;
  unsigned n = scan_digits(q, magnitude);
  // A sign is looked for only when no digit starts the text: testing for it first would put a load,
  // a comparison and an add before every number's digit scan, on the chain from one column's start to
  // the next that bounds the parse (bench/prototypes/spec.cpp, -DSIGN).
  if (n == 0 && (*p == '-' || *p == '+')) [[unlikely]] {
    negative = *p == '-';
    n = scan_digits(++q, magnitude);
  }
  return n - 1 < 15 ? q + n : nullptr;
}

/// Python's float(): spaces, sign, decimal or inf/infinity/nan in any case; correctly rounded.
[[nodiscard]] inline bool parse_double(std::string_view text, double &value) noexcept {
  text = strip(text);
  if (scan_short_decimal(text.data(), text.data() + text.size(), value) == text.data() + text.size())
    return true;
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

/// The low `size` bytes of bits, in the field's byte order (two's complement makes this right for
/// signed values that were range-checked first).
inline void store_bits(std::byte *out, std::uint64_t bits, std::uint32_t size, bool swap) noexcept {
  switch (size) {
  case 1: store(out, static_cast<std::uint8_t>(bits), false); break;
  case 2: store(out, static_cast<std::uint16_t>(bits), swap); break;
  case 4: store(out, static_cast<std::uint32_t>(bits), swap); break;
  default: store(out, bits, swap); break;
  }
}

/// Stores a parsed integer in an int, uint or bool field; false if it does not fit.
[[nodiscard, gnu::always_inline]] inline bool store_integer(const field_spec &field, bool negative,
                                                          std::uint64_t magnitude, std::byte *out) noexcept {
  if (field.kind == field_kind::unsigned_int) {
    if (negative || (field.size < 8 && magnitude >> (8 * field.size) != 0))
      return false;
    store_bits(out, magnitude, field.size, field.big_endian);
    return true;
  }
  // Signed, and bool, which numpy parses as a 64-bit integer first.
  unsigned bits = field.kind == field_kind::boolean ? 64 : 8 * field.size;
  if (magnitude > (std::uint64_t{1} << (bits - 1)) - 1 + (negative ? 1 : 0))
    return false;
  if (field.kind == field_kind::boolean) {
    store(out, static_cast<std::uint8_t>(magnitude != 0), false);
    return true;
  }
  store_bits(out, negative ? 0 - magnitude : magnitude, field.size, field.big_endian);
  return true;
}

/// Stores a parsed number in a float32 (numpy: parse as double, then cast) or float64 field.
inline void store_floating(const field_spec &field, double value, std::byte *out) noexcept {
  if (field.size == 4)
    store(out, static_cast<float>(value), field.big_endian);
  else
    store(out, value, field.big_endian);
}

/// Converts one field into out; false if the text does not fit the field's type.
[[nodiscard, gnu::always_inline]] inline bool convert(const field_spec &field, std::string_view text,
                                                    std::byte *out) noexcept {
  switch (field.kind) {
  case field_kind::floating: {
    double value = 0;
    if (!parse_double(text, value))
      return false;
    store_floating(field, value, out);
    return true;
  }
  case field_kind::signed_int:
  case field_kind::unsigned_int:
  case field_kind::boolean: {
    text = strip(text);
    bool negative = false;
    std::uint64_t magnitude = 0;
    return scan_integer(text.data(), text.data() + text.size(), negative, magnitude) == text.data() + text.size() &&
           store_integer(field, negative, magnitude, out);
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
