// Linux implementation of detail/platform.hpp: memfd, mmap, abstract UNIX sockets with SCM_RIGHTS.
#include "detail/platform.hpp"
#include "detail/parallel.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstdint>
#include <fstream>
#include <new>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace ndshm::detail {
namespace {

#ifndef MADV_POPULATE_WRITE
constexpr int MADV_POPULATE_WRITE = 23; // Linux 5.14
#endif
#ifndef MADV_COLLAPSE
constexpr int MADV_COLLAPSE = 25; // Linux 6.1
#endif

[[noreturn]] void throw_errno(const char *what) {
  throw std::system_error(errno, std::generic_category(), what);
}

sockaddr_un abstract_address(const std::string &address, socklen_t &length) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (address.size() + 1 > sizeof(sa.sun_path))
    throw std::invalid_argument("socket address too long: " + address);
  sa.sun_path[0] = '\0';
  std::memcpy(sa.sun_path + 1, address.data(), address.size());
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + address.size());
  return sa;
}

// Bytes that can still be allocated: MemAvailable, capped by a cgroup v2 limit if one is set.
std::uint64_t available_memory() {
  std::uint64_t available = UINT64_MAX;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") {
      available = kib * 1024;
      break;
    }
  std::ifstream max("/sys/fs/cgroup/memory.max"), current("/sys/fs/cgroup/memory.current");
  std::uint64_t limit = 0, used = 0;
  if (max >> limit && current >> used)
    available = std::min(available, limit > used ? limit - used : 0);
  return available;
}

/// The kernel would fill all of memory page by page and call the OOM killer before an allocation
/// failed: refuse up front what cannot fit (checked for large requests only, to keep small ones cheap).
void refuse_beyond_memory(std::uint64_t nbytes) {
  if (nbytes >= (std::uint64_t{64} << 20) && nbytes > available_memory())
    throw std::bad_alloc();
}

/// NDSHM_HUGE_PAGES: "0" keeps every page small (as NUMPY_MADVISE_HUGEPAGE=0 does numpy's), "1" takes a
/// huge page wherever one can be had, anything else (or nothing) paces them (huge_page_pacer). Read at
/// every call: a test may change it.
enum class huge_pages { never, always, paced };

huge_pages huge_pages_setting() noexcept {
  const char *value = std::getenv("NDSHM_HUGE_PAGES");
  std::string_view text = value != nullptr ? value : "";
  return text == "0" ? huge_pages::never : text == "1" ? huge_pages::always : huge_pages::paced;
}

double thread_cpu_seconds() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

/// nbytes of address space held (inaccessible) from a huge page boundary on, for a mapping to replace
/// (MAP_FIXED): the kernel maps huge pages only at such addresses. nullptr when none is free.
void *reserve_huge_aligned(std::uint64_t nbytes) noexcept {
  void *room = ::mmap(nullptr, nbytes + huge_page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
  if (room == MAP_FAILED)
    return nullptr;
  auto low = reinterpret_cast<std::uintptr_t>(room), at = huge_round(low);
  auto high = low + nbytes + huge_page_size;
  if (at > low)
    ::munmap(room, at - low);
  if (at + nbytes < high)
    ::munmap(reinterpret_cast<void *>(at + nbytes), high - (at + nbytes));
  return reinterpret_cast<void *>(at);
}

} // namespace

void unique_fd::reset(int fd) noexcept {
  if (m_fd >= 0)
    ::close(m_fd);
  m_fd = fd;
}

unique_fd memory_create_growable(const std::string &label) {
  unique_fd fd(::memfd_create(label.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd)
    throw_errno("memfd_create");
  ::fchmod(fd.get(), 0600);
  return fd;
}

unique_fd memory_create(const std::string &label, std::uint64_t nbytes, bool reserve) {
  unique_fd fd = memory_create_growable(label);
  std::uint64_t reserved = page_round(nbytes == 0 ? 1 : nbytes);
  refuse_beyond_memory(reserved);
  // fallocate reserves every page now: a short machine fails here with ENOSPC/ENOMEM, not later with SIGBUS.
  // Without reserve, the creator promises to prefault every page itself (memory_prefault), in parallel.
  if (reserve)
    memory_allocate(fd.get(), 0, reserved);
  else if (::ftruncate(fd.get(), static_cast<off_t>(reserved)) != 0)
    throw_errno("ftruncate");
  memory_seal(fd.get());
  return fd;
}

void memory_seal(int fd) {
  // Sealed size: no process can shrink the segment under another's mapping (which would SIGBUS).
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    throw_errno("fcntl(F_ADD_SEALS)");
}


void *memory_resize(int fd, void *address, std::uint64_t old_bytes, std::uint64_t nbytes) {
  std::uint64_t before = page_round(old_bytes == 0 ? 1 : old_bytes), after = page_round(nbytes == 0 ? 1 : nbytes);
  if (after > before)
    refuse_beyond_memory(after - before);
  // Each step either completes or leaves fd and the mapping as they were (the caller keeps both).
  if (::ftruncate(fd, static_cast<off_t>(after)) != 0)
    throw_errno("ftruncate");
  if (address == nullptr)
    return memory_map(fd, after, true);
  if (after == before)
    return address;
  void *moved = ::mremap(address, before, after, 0); // in place: a shrink, or a growth with room after it
  if (moved == MAP_FAILED) { // elsewhere, at a huge page boundary as memory_map places mappings
    void *target = reserve_huge_aligned(after);
    moved = target == nullptr ? MAP_FAILED
                              : ::mremap(address, before, after, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    if (moved == MAP_FAILED && target != nullptr)
      ::munmap(target, after);
  }
  if (moved == MAP_FAILED)
    throw std::bad_alloc(); // a shrink cannot fail so; the file is shorter, the mapping not touched past it
  return moved;
}

void memory_allocate(int fd, std::uint64_t offset, std::uint64_t nbytes) {
  while (nbytes != 0 && ::fallocate(fd, 0, static_cast<off_t>(offset), static_cast<off_t>(nbytes)) != 0) {
    if (errno == EINTR)
      continue;
    if (errno == ENOSPC || errno == ENOMEM || errno == EFBIG)
      throw std::bad_alloc();
    throw_errno("fallocate");
  }
}

std::uint64_t memory_size(int fd) {
  struct stat st{};
  if (::fstat(fd, &st) != 0)
    throw_errno("fstat");
  return static_cast<std::uint64_t>(st.st_size);
}

std::uint64_t page_round(std::uint64_t nbytes) noexcept {
  static const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  return (nbytes + page - 1) / page * page;
}

void *memory_map(int fd, std::uint64_t nbytes, bool writable) {
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  std::uint64_t size = page_round(nbytes == 0 ? 1 : nbytes);
  void *target = size >= huge_page_size ? reserve_huge_aligned(size) : nullptr;
  void *address = ::mmap(target, size, prot, MAP_SHARED | (target != nullptr ? MAP_FIXED : 0), fd, 0);
  if (address == MAP_FAILED) {
    int error = errno;
    if (target != nullptr)
      ::munmap(target, size);
    errno = error;
    if (errno == ENOMEM)
      throw std::bad_alloc();
    throw_errno("mmap");
  }
  return address;
}

void memory_unmap(void *address, std::uint64_t nbytes) noexcept {
  ::munmap(address, page_round(nbytes == 0 ? 1 : nbytes));
}

void file_pages_release(const void *begin, std::uint64_t nbytes) noexcept {
  const auto first = page_round(reinterpret_cast<std::uintptr_t>(begin));
  const auto last = (reinterpret_cast<std::uintptr_t>(begin) + nbytes) & ~(page_round(1) - 1);
  if (last > first) // (MADV_DONTNEED: on a private file mapping never written, nothing is lost)
    (void)::madvise(reinterpret_cast<void *>(first), last - first, MADV_DONTNEED);
}

bool memory_populate(void *address, std::uint64_t nbytes, unsigned threads) noexcept {
  auto *base = static_cast<std::byte *>(address);
  std::uint64_t total = page_round(nbytes);
  // whole huge pages to each thread (base is at a huge page boundary: memory_map put it there)
  std::uint64_t step = huge_round((total + threads - 1) / std::max(threads, 1u));
  std::size_t parts = static_cast<std::size_t>((total + step - 1) / step);
  std::vector<char> mapped(parts, 0);
  run_parallel(parts, [&](std::size_t k) {
    mapped[k] = memory_prefault(base + k * step, std::min(step, total - k * step)) ? 1 : 0;
  });
  return std::find(mapped.begin(), mapped.end(), 0) == mapped.end();
}

bool memory_prefault(void *begin, std::uint64_t nbytes) noexcept {
  if (nbytes == 0)
    return true;
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  auto first = reinterpret_cast<std::uintptr_t>(begin) / page * page;
  auto last = (reinterpret_cast<std::uintptr_t>(begin) + nbytes + page - 1) / page * page;
  // Each whole huge page's range becomes one huge page: MADV_COLLAPSE (whatever the system's THP
  // settings but "deny") needs one small page there first, then replaces it. Elsewhere, wherever that
  // fails (an older kernel, no free huge page) and wherever the pacer says so, pages stay small.
  const huge_pages setting = huge_pages_setting();
  thread_local huge_page_pacer pacer;
  // Only ranges that start at or after begin: one that begin falls inside was the call before's (the
  // loader maps its rows on to the end of their 2 MiB), huge already or kept small by the pacer. From
  // begin's page on, every other call of a 1 GB load tried such a range again: the pacer counted it
  // twice, and a range kept small was collapsed all the same, its 512 pages copied (one try in two
  // on one thread; perf: 3.5% of a load's samples in copy_mc_enhanced_fast_string).
  auto huge_first = huge_round(reinterpret_cast<std::uintptr_t>(begin));
  auto huge_last = last / huge_page_size * huge_page_size;
  for (auto at = huge_first; at < huge_last && setting != huge_pages::never; at += huge_page_size) {
    if (setting == huge_pages::paced && !pacer.next_huge())
      continue;
    double start = setting == huge_pages::paced ? thread_cpu_seconds() : 0;
    if (::madvise(reinterpret_cast<void *>(at), page, MADV_POPULATE_WRITE) != 0)
      break;
    (void)::madvise(reinterpret_cast<void *>(at), huge_page_size, MADV_COLLAPSE);
    if (setting == huge_pages::paced)
      pacer.took(thread_cpu_seconds() - start);
  }
  if (::madvise(reinterpret_cast<void *>(first), last - first, MADV_POPULATE_WRITE) == 0)
    return true;
  return errno != ENOMEM && errno != EFAULT; // EINVAL: a kernel before 5.14; pages fault in as written
}

unique_fd socket_listen(const std::string &address) {
  unique_fd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sock)
    throw_errno("socket");
  socklen_t length = 0;
  sockaddr_un sa = abstract_address(address, length);
  if (::bind(sock.get(), reinterpret_cast<sockaddr *>(&sa), length) != 0) {
    if (errno == EADDRINUSE)
      return {};
    throw_errno("bind");
  }
  if (::listen(sock.get(), 128) != 0)
    throw_errno("listen");
  return sock;
}

unique_fd socket_connect(const std::string &address) {
  unique_fd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sock)
    throw_errno("socket");
  socklen_t length = 0;
  sockaddr_un sa = abstract_address(address, length);
  while (::connect(sock.get(), reinterpret_cast<sockaddr *>(&sa), length) != 0) {
    if (errno == EINTR)
      continue;
    if (errno == ECONNREFUSED || errno == ENOENT)
      return {};
    throw_errno("connect");
  }
  return sock;
}

unique_fd socket_accept(int listener) {
  int fd = -1;
  do {
    fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return unique_fd(fd);
}

peer_credentials socket_peer(int sock) {
  ucred cred{};
  socklen_t length = sizeof cred;
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0)
    throw_errno("getsockopt(SO_PEERCRED)");
  return {cred.pid, cred.uid};
}

bool socket_send(int sock, std::span<const std::byte> message, int fd) {
  iovec iov{const_cast<std::byte *>(message.data()), message.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  }
  for (;;) {
    if (::sendmsg(sock, &msg, MSG_NOSIGNAL) >= 0)
      return true;
    if (errno == EINTR)
      continue;
    if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
      return false;
    throw_errno("sendmsg");
  }
}

std::optional<std::size_t> socket_recv(int sock, std::span<std::byte> buffer, unique_fd *fd) {
  iovec iov{buffer.data(), buffer.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = -1;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == ECONNRESET || errno == ENOTCONN)
      return std::nullopt;
    throw_errno("recvmsg");
  }
  for (cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
      int received = -1;
      std::memcpy(&received, CMSG_DATA(cmsg), sizeof(int));
      if (fd != nullptr)
        fd->reset(received);
      else
        ::close(received);
    }
  }
  if (n == 0)
    return std::nullopt;
  if (msg.msg_flags & MSG_TRUNC)
    throw std::runtime_error("ndshm: protocol message truncated");
  return static_cast<std::size_t>(n);
}

std::vector<std::string> listening_addresses(const std::string &prefix) {
  // Lines end in the path; abstract ones start with '@'. State 01 = listening (SS_UNCONNECTED + ACC flag).
  std::vector<std::string> found;
  std::ifstream in("/proc/net/unix");
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    auto at = line.find(" @" + prefix);
    if (at == std::string::npos || line.find(" 00010000 ") == std::string::npos)
      continue;
    found.push_back(line.substr(at + 2));
  }
  return found;
}

std::optional<process_info> process_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text))
    return std::nullopt;
  // Fields after the command (which may hold spaces and parentheses): state, ppid, ... starttime (22nd).
  auto close = text.rfind(')');
  if (close == std::string::npos)
    return std::nullopt;
  std::vector<std::string_view> fields;
  std::string_view rest = std::string_view(text).substr(close + 1);
  while (!rest.empty()) {
    auto start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos)
      break;
    rest.remove_prefix(start);
    auto end = rest.find(' ');
    fields.push_back(rest.substr(0, end));
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  }
  if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X")
    return std::nullopt;
  process_info info;
  info.parent = static_cast<pid_t>(std::strtol(std::string(fields[1]).c_str(), nullptr, 10));
  info.start_time = std::strtoull(std::string(fields[19]).c_str(), nullptr, 10);
  return info;
}

std::uint64_t random_u64() {
  std::uint64_t value = 0;
  while (::getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value)) {
    if (errno != EINTR)
      throw_errno("getrandom");
  }
  return value;
}

int spawn_daemon(const std::string &path, const std::vector<std::string> &args) {
  std::vector<char *> argv;
  argv.push_back(const_cast<char *>(path.c_str()));
  for (const auto &arg : args)
    argv.push_back(const_cast<char *>(arg.c_str()));
  argv.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Default signal dispositions and an empty mask: the broker must not inherit an ignored SIGTERM.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, path.c_str(), nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    throw std::system_error(rc, std::generic_category(), "cannot start the ndshm broker " + path);
  int status = 0;
  // The spawned process listens, forks the broker and exits at once: this wait is short.
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno == EINTR)
      continue;
    return 0; // ECHILD: SIGCHLD is ignored here and the kernel reaped it; connecting tells the rest.
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

} // namespace ndshm::detail
