// ndshm-broker: started by the first process of a session that needs it; see docs/design.md.
//
// Usage: ndshm-broker --session NAME
// It listens on the abstract socket "ndshm<protocol version>.<uid>.<session>", forks the serving process into its own
// session and exits 0, so the starter sees either a listening socket or a failure status.
// Exit status 0 also when another broker already listens there.
#include <cstdlib>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker/broker.hpp"
#include "ndshm/handle.hpp"

int main(int argc, char **argv) {
  std::string session;
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::strcmp(argv[i], "--session") == 0)
      session = argv[i + 1];
  if (!ndshm::valid_name(session))
    return 2;

  // Detach from the starter's terminal and pipes: a caller capturing its output must not wait for us.
  int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
    if (std::getenv("NDSHM_BROKER_DEBUG") == nullptr)
      ::dup2(null, 2);
  }
  ::close_range(3, ~0U, 0);
  ::setsid();

  double linger = 5.0;
  if (const char *env = std::getenv("NDSHM_BROKER_LINGER"))
    linger = std::strtod(env, nullptr);

  ndshm::detail::unique_fd listener;
  try {
    listener = ndshm::detail::socket_listen(ndshm::detail::socket_address(session));
  } catch (...) {
    return 3;
  }
  if (!listener)
    return 0; // another broker serves this session

  pid_t child = ::fork();
  if (child < 0)
    return 4;
  if (child > 0)
    ::_exit(0);

  // One descriptor per registered segment: allow as many as the hard limit permits.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  try {
    ndshm::broker::broker server(std::move(listener),
                                 std::chrono::milliseconds(static_cast<long long>(linger * 1000)));
    return server.run();
  } catch (...) {
    return 5;
  }
}
