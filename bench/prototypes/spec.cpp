// Prototype (not part of the library): a parser hand-written for exactly the coverage layout
// (S10, i4, f4, i4, i4, tab-separated), digits 8 at a time, no dispatch, no fallbacks. It is the ceiling
// the generic row program (src/loadtxt/parser.cpp) is compared with: 0.39-0.49 s on a 300 MB slice of
// bench_loadtxt.py's coverage file, one thread (row program, bench/parse_bench.cpp: 0.59-0.85 s),
// 2026-11-26 on the project VM.
// -DTWO parses two independent halves of the text in one loop, so that one row's latency can hide
// behind the other's: this file, 3 interleaved pairs, best of 5 each (2026-11-26): 0.39-0.51 s vs
// 0.41-0.44 s in one loop, no gain: the parse is bound by the instructions it runs, not by their latency.
// Build: g++ -O2 -std=c++20 [-DTWO] -o /tmp/spec bench/prototypes/spec.cpp
// Run:   head -c 300000000 /tmp/ndshm-bench/coverage-1000000000.tsv > /tmp/cov300.tsv && /tmp/spec /tmp/cov300.tsv
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <vector>
#include <bit>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <emmintrin.h>
static inline uint64_t load8(const char*p){uint64_t v;memcpy(&v,p,8);return v;}
static inline unsigned lead(uint64_t x){uint64_t o=(((x&0x7F7F7F7F7F7F7F7FULL)+0x7676767676767676ULL)|x)&0x8080808080808080ULL;return o?std::countr_zero(o)>>3:8;}
static inline uint64_t dv(uint64_t x,unsigned n){x<<=8*(8-n);x=(x*2561)>>8;x=((x&0x00FF00FF00FF00FFULL)*6553601)>>16;return((x&0x0000FFFF0000FFFFULL)*42949672960001ULL)>>32;}
static const uint64_t P10[]={1,10,100,1000,10000,100000,1000000,10000000,100000000};
// parse int ending at tab; returns pointer to terminator
static inline const char* pint(const char*p,uint32_t&out,bool&ok){
  uint64_t x=load8(p)^0x3030303030303030ULL; unsigned n=lead(x);
  if(n<8){ out=(uint32_t)(n?dv(x,n):0); ok&=n!=0; return p+n;}
  uint64_t y=load8(p+8)^0x3030303030303030ULL; unsigned m=lead(y);
  out=(uint32_t)(dv(x,8)*P10[m]+(m?dv(y,m):0)); return p+8+m;
}
// One row at p into d (26 bytes); returns the next row.
static inline const char* row(const char*p,char*d,bool&ok){
  static const double pw[]={1,10,100,1000,10000};
    __m128i v=_mm_loadu_si128((const __m128i*)p);
    unsigned m=_mm_movemask_epi8(_mm_cmpeq_epi8(v,_mm_set1_epi8('\t')));
    unsigned L=std::countr_zero(m|0x10000);
    __m128i keep=_mm_cmplt_epi8(_mm_setr_epi8(0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15),_mm_set1_epi8((char)L));
    _mm_storeu_si128((__m128i*)d,_mm_and_si128(v,keep)); ok&=L<=10;
    p+=L; ok&=*p=='\t'; p++;
    uint32_t pos; p=pint(p,pos,ok); memcpy(d+10,&pos,4); ok&=*p=='\t'; p++;
    uint32_t w,f; const char*q=pint(p,w,ok); ok&=*q=='.'; const char*q2=pint(q+1,f,ok); unsigned fm=q2-q-1;
    float pct=(float)((double)(w*P10[fm]+f)/pw[fm]); memcpy(d+14,&pct,4); p=q2; ok&=*p=='\t'; p++;
    uint32_t c; p=pint(p,c,ok); memcpy(d+18,&c,4); ok&=*p=='\t'; p++;
    uint32_t t; p=pint(p,t,ok); memcpy(d+22,&t,4); ok&=*p=='\n'; p++;
  return p;
}
int main(int argc,char**argv){
  int fd=open(argv[1],O_RDONLY); struct stat st; fstat(fd,&st);
  const char*base=(const char*)mmap(0,st.st_size,PROT_READ,MAP_PRIVATE|MAP_POPULATE,fd,0);
  const char*end=base+st.st_size-64;
  std::vector<char> out(11000000ull*26);
  for(int r=0;r<5;r++){
  auto t0=std::chrono::steady_clock::now();
  const char*p=base; char*d=out.data(); bool ok=true; size_t rows=0;
#ifdef TWO // two independent halves of the text in one loop: their latencies overlap
  const char*mid=(const char*)memchr(base+(end-base)/2,'\n',1000)+1;
  const char*pb=mid; char*db=out.data()+(11000000ull/2)*26;
  while(p<mid && pb<end){ p=row(p,d,ok); pb=row(pb,db,ok); d+=26; db+=26; rows+=2; }
  for(;p<mid;d+=26,rows++) p=row(p,d,ok);
  for(;pb<end;db+=26,rows++) pb=row(pb,db,ok);
#else
  for(;p<end;d+=26,rows++) p=row(p,d,ok);
#endif
  auto t1=std::chrono::steady_clock::now();
  printf("%.3f s rows %zu ok %d\n",std::chrono::duration<double>(t1-t0).count(),rows,ok);}
}
