// arc4random for wheels that link libstdc++ statically (NDSHM_STATIC_CXX_RUNTIME).
// GCC 12's libstdc++ on glibc 2.36 makes std::random_device call arc4random, a glibc 2.36 symbol that would
// raise the wheel's manylinux tag to 2_36; this definition, resolved inside the link, keeps it at 2_34.
#include <cstdint>
#include <sys/random.h>

extern "C" std::uint32_t arc4random() {
  std::uint32_t value = 0;
  while (getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value)) {
    // EINTR only: a 4-byte getrandom never returns short once the pool is initialised.
  }
  return value;
}
