// Prototype (not part of the library): what fresh pages cost on this VM, one thread, 1 GiB.
// Measured 2026-11-26: memfd MADV_POPULATE_WRITE alone 0.83-0.85 s; memfd fallocate 0.32-0.48 s then
// populate 0.38-0.46 s; anonymous memory populated 0.47-0.50 s (shmem gets no huge pages here:
// /sys/kernel/mm/transparent_hugepage/shmem_enabled is "never").
// Again later the same day, 1 MiB at a time as the loader maps its rows: MADV_POPULATE_WRITE alone
// 0.80-1.03 s, fallocate then MADV_POPULATE_WRITE 0.67-0.89 s (6 interleaved pairs in an earlier
// version of this file, faster in 5); this file as it is, 3 runs: 0.79-0.80 s vs 0.68-0.71 s. So
// growing_segment::reserve allocated its pages with fallocate, until huge pages came (collapse.cpp:
// MADV_COLLAPSE gives shmem huge pages whatever shmem_enabled says; collapsing pages fallocate made
// first would copy them, so nothing is fallocated ahead any more).
// 2026-11-26 (later): can the page-table half cost less? After fallocate, MADV_POPULATE_READ (22) or a
// read of a byte per page (read faults map 16 pages each for files, and a shared writable shmem mapping
// maps them writable) instead of MADV_POPULATE_WRITE, 1 MiB windows, then a write to every page (part 2
// of main below). This file, 3 runs: fallocate + POPULATE_WRITE 0.69-0.74 s, + POPULATE_READ
// 0.85-0.90 s, + a byte read per page 1.00-1.01 s; the writes after them 0.005-0.006 s (no faults
// left). So POPULATE_WRITE stays.
// Build: g++ -O2 -o /tmp/fault bench/prototypes/fault.cpp && /tmp/fault
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <linux/falloc.h>
static double now(){return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();}
int main(){
  size_t n=1ul<<30, step=1ul<<20;
  for(int r=0;r<3;r++){
    int fd=memfd_create("x",MFD_CLOEXEC); ftruncate(fd,n);
    double t=now(); fallocate(fd,0,0,n); double t1=now();
    char*p=(char*)mmap(0,n,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0);
    madvise(p,n,23 /*MADV_POPULATE_WRITE*/); double t2=now();
    printf("memfd fallocate %.3f populate %.3f\n",t1-t,t2-t1);
    munmap(p,n); close(fd);
    fd=memfd_create("y",MFD_CLOEXEC); ftruncate(fd,n);
    p=(char*)mmap(0,n,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0);
    t=now(); madvise(p,n,23); t1=now();
    printf("memfd populate-write only %.3f\n",t1-t);
    munmap(p,n); close(fd);
    for(int allocate=0;allocate<2;allocate++){ // 1 MiB windows, as the loader maps rows ahead of its parse
      fd=memfd_create("w",MFD_CLOEXEC); ftruncate(fd,n);
      p=(char*)mmap(0,n,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0);
      t=now();
      for(size_t k=0;k<n;k+=step){ if(allocate) fallocate(fd,0,k,step); madvise(p+k,step,23); }
      printf("memfd 1 MiB windows, %s %.3f\n",allocate?"fallocate + populate":"populate only",now()-t);
      munmap(p,n); close(fd);
    }
    for(int mode=0;mode<2;mode++){ // part 2: fallocate, then map the pages by reading them
      fd=memfd_create("r",MFD_CLOEXEC); ftruncate(fd,n);
      p=(char*)mmap(0,n,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0);
      t=now();
      for(size_t k=0;k<n;k+=step){
        fallocate(fd,0,k,step);
        if(mode==0) madvise(p+k,step,22 /*MADV_POPULATE_READ*/);
        else { volatile char sum=0; for(size_t j=k;j<k+step;j+=4096) sum+=p[j]; }
      }
      t1=now();
      for(size_t k=0;k<n;k+=4096) p[k]=1;
      printf("memfd 1 MiB windows, fallocate + %s %.3f, then a write per page %.3f\n",
             mode==0?"populate-read":"read a byte per page",t1-t,now()-t1);
      munmap(p,n); close(fd);
    }
    t=now(); p=(char*)mmap(0,n,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); madvise(p,n,23); t1=now();
    printf("anon populate %.3f\n",t1-t); munmap(p,n);
  }
}
