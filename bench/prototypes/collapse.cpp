// Prototype (not part of the library): what one 2 MiB huge page costs through MADV_COLLAPSE on a memfd
// (a small page touched first, then collapsed), range by range over 888 MiB, with memory freed just
// before ("warm") and after 8 s idle ("cold", when this VM's page_reporting has handed free 2 MiB
// blocks back to the host). Measured 2026-11-26 on the project VM (microseconds per 2 MiB):
//   first  total 1.041 s  p10 239  p50 3663  p90 4433
//   warm   total 0.139 s  p10 248  p50 290   p90 358
//   cold   total 0.987 s  p10 263  p50 2989  p90 4369
//   cold   total 0.229 s  p10 263  p50 302   p90 540   (8 s idle, but little had been reported)
// Bimodal: a warm huge page takes 0.25-0.4 ms, a cold one 3-4.4 ms; small pages cost about 2.5 ms of
// CPU per 2 MiB either way (bench_pages.py: ndshm.empty of 888 MiB, 0.53-0.56 s on 2 threads), since
// they come from smaller free blocks that are never reported. So a loader that saw a slow collapse
// could take small pages for a while (not done: see the session notes of 2026-11-26).
// Build: g++ -O2 -o /tmp/collapse bench/prototypes/collapse.cpp && /tmp/collapse
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <chrono>
#include <vector>
#include <algorithm>
static double now(){return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();}
void run(const char*tag){
  size_t n=888ul<<20, H=2ul<<20;
  char*raw=(char*)mmap(0,n+H,PROT_NONE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE,-1,0);
  char*al=(char*)(((uintptr_t)raw+H-1)&~(H-1));
  int fd=memfd_create("x",MFD_CLOEXEC); ftruncate(fd,n);
  char*p=(char*)mmap(al,n,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_FIXED,fd,0);
  std::vector<double> d;
  double t0=now();
  for(size_t o=0;o<n;o+=H){ double t=now(); madvise(p+o,4096,23); madvise(p+o,H,25); d.push_back((now()-t)*1e6);}
  double tot=now()-t0;
  std::vector<double> s=d; std::sort(s.begin(),s.end());
  printf("%s total %.3f  per-2MiB us: p10 %.0f p50 %.0f p90 %.0f  first8:",tag,tot,s[s.size()/10],s[s.size()/2],s[s.size()*9/10]);
  for(int i=0;i<8;i++) printf(" %.0f",d[i]); printf("\n");
  munmap(raw,n+H); close(fd);
}
int main(){ run("first"); run("warm"); run("warm"); sleep(8); run("cold"); run("warm"); sleep(8); run("cold"); }
