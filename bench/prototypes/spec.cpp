// Prototype (not part of the library): a parser hand-written for exactly the coverage layout
// (S10, i4, f4, i4, i4, tab-separated), digits 8 at a time, no dispatch, no fallbacks. It is the ceiling
// the generic row program (src/loadtxt/parser.cpp) is compared with, and, with the switches below, a
// way to price each thing the generic parser must do that this one leaves out.
// Build: g++ -O2 -std=c++20 [-DSIGN|-DSIGN2|-DSIGN3] [-DRANGE] [-DLIMIT] [-DNULLS] [-DSTOPS] [-DCR] [-DTWO]
//            -o /tmp/spec bench/prototypes/spec.cpp
// Run:   head -n 10734988 /tmp/ndshm-bench/coverage-1000000000.tsv > /tmp/cov300.tsv && /tmp/spec /tmp/cov300.tsv
// Prints the best of 7 passes over the 300 MB slice. Instructions per row (valgrind --tool=callgrind on
// 300,000 rows, main's own count / 7 passes / rows): 204 as is, 227 with -DSIGN3 -DRANGE -DNULLS -DSTOPS -DCR.
//
// 2026-11-26, project VM, one thread, two runs of each build one after the other (seconds):
//   none 0.393 0.413 | SIGN 0.508 0.528 | SIGN2 0.486 0.472 | SIGN3 0.399 0.405 | RANGE 0.393 0.398
//   LIMIT 0.455 0.457 | NULLS 0.411 0.407 | STOPS 0.413 0.412 | CR 0.417 0.413
//   SIGN RANGE LIMIT NULLS STOPS CR (what the row program did): 0.588 0.594
//   SIGN3 RANGE NULLS STOPS CR (what it does since): 0.411 0.432; with LIMIT 0.452 0.507
// - SIGN: an optional sign tested before the digits (load, compare, add) puts 4-6 cycles on the chain
//   from a column's start to the next column's, which bounds the parse: +28%. SIGN2 (both loads made,
//   one chosen) +17%. SIGN3 (a sign looked for only when no digit comes first) costs nothing.
// - LIMIT: the room left (64 bytes) checked before every column rather than once per row: +10-15%.
// - RANGE (int32 range check), NULLS (bad shapes end the row), STOPS (text ends at '\n', '\r' or the
//   comment character too), CR (CRLF line ends) cost little.
// -DTWO parses two independent halves of the text in one loop, so that one row's latency can hide
// behind the other's (earlier version of this file, 3 interleaved pairs, best of 5 each: 0.39-0.51 s vs
// 0.41-0.44 s in one loop, no gain).
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
static inline unsigned sd(const char*p,uint64_t&v){
  uint64_t x=load8(p)^0x3030303030303030ULL; unsigned n=lead(x);
  if(n<8){ v=n?dv(x,n):0; return n;}
  uint64_t y=load8(p+8)^0x3030303030303030ULL; unsigned m=lead(y);
  if(m==8) return 16;
  v=dv(x,8)*P10[m]+(m?dv(y,m):0); return 8+m;
}
static inline unsigned sd2(uint64_t raw,const char*p,uint64_t&v){
  uint64_t x=raw^0x3030303030303030ULL; unsigned n=lead(x);
  if(n<8){ v=n?dv(x,n):0; return n;}
  uint64_t y=load8(p+8)^0x3030303030303030ULL; unsigned m=lead(y);
  if(m==8) return 16;
  v=dv(x,8)*P10[m]+(m?dv(y,m):0); return 8+m;
}
static inline const char* pint(const char*p,uint32_t&out,bool&ok){
#ifdef SIGN
  bool neg=*p=='-'; p+= (neg||*p=='+');
  uint64_t v=0; unsigned n=sd(p,v);
#elif defined(SIGN2)
  uint64_t x0=load8(p), x1=load8(p+1);
  char c0=(char)x0; bool neg=c0=='-'; bool sg=neg||c0=='+';
  uint64_t v=0; unsigned n=sd2(sg?x1:x0,p+sg,v); p+=sg;
#elif defined(SIGN3)
  bool neg=false;
  uint64_t v=0; unsigned n=sd(p,v);
  if(__builtin_expect(n==0,0)){ neg=*p=='-'; if(neg||*p=='+'){ ++p; n=sd(p,v);} }
#else
  bool neg=false;
  uint64_t v=0; unsigned n=sd(p,v);
#endif
#ifdef NULLS
  if(n-1>=15) return nullptr;
#else
  ok&=n-1<15;
#endif
#ifdef RANGE
  ok&=v<=0x7FFFFFFFu+uint64_t{neg};
#endif
  out=(uint32_t)(neg?0-v:v); return p+n;
}
static inline const char* pdec(const char*p,float&out,bool&ok){
  static const double pw[]={1e0,1e1,1e2,1e3,1e4,1e5,1e6,1e7,1e8,1e9,1e10,1e11,1e12,1e13,1e14,1e15};
  static const uint64_t sc[]={1,10,100,1000,10000,100000,1000000,10000000,100000000,1000000000,10000000000,100000000000,1000000000000,10000000000000,100000000000000,1000000000000000};
#ifdef SIGN
  bool neg=*p=='-'; const char*q=p+(neg||*p=='+');
  uint64_t w=0,f=0; unsigned n=sd(q,w),m=0; q+=n;
#elif defined(SIGN2)
  uint64_t x0=load8(p), x1=load8(p+1);
  char c0=(char)x0; bool neg=c0=='-'; bool sg=neg||c0=='+';
  const char*q=p+sg;
  uint64_t w=0,f=0; unsigned n=sd2(sg?x1:x0,q,w),m=0; q+=n;
#elif defined(SIGN3)
  bool neg=false; const char*q=p;
  uint64_t w=0,f=0; unsigned n=sd(q,w),m=0;
  if(__builtin_expect(n==0,0)){ neg=*q=='-'; if(neg||*q=='+'){ ++q; n=sd(q,w);} }
  q+=n;
#else
  bool neg=false; const char*q=p;
  uint64_t w=0,f=0; unsigned n=sd(q,w),m=0; q+=n;
#endif
  if(*q=='.'){ m=sd(q+1,f); q+=1+m; }
#ifdef NULLS
  if(n+m-1>=15) return nullptr;
#else
  ok&=n+m-1<15;
#endif
  double mag=(double)(w*sc[m]+f)/pw[m]; out=(float)(neg?-mag:mag); return q;
}
#ifdef LIMIT
#define LIM if(limit-p<64) return nullptr;
#else
#define LIM
#endif
#ifdef NULLS
#define CHK if(!p) return nullptr;
#else
#define CHK
#endif
static inline const char* row(const char*p,char*d,bool&ok,const char*limit){
    LIM
    __m128i v=_mm_loadu_si128((const __m128i*)p);
#ifdef STOPS
    __m128i st=_mm_or_si128(_mm_cmpeq_epi8(v,_mm_set1_epi8('\t')),_mm_cmpeq_epi8(v,_mm_set1_epi8('\n')));
    st=_mm_or_si128(st,_mm_cmpeq_epi8(v,_mm_set1_epi8('#')));
    st=_mm_or_si128(st,_mm_cmpeq_epi8(v,_mm_set1_epi8('\r')));
    unsigned msk=_mm_movemask_epi8(st);
#else
    unsigned msk=_mm_movemask_epi8(_mm_cmpeq_epi8(v,_mm_set1_epi8('\t')));
#endif
    unsigned L=std::countr_zero(msk|0x10000);
    __m128i keep=_mm_cmplt_epi8(_mm_setr_epi8(0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15),_mm_set1_epi8((char)L));
    _mm_storeu_si128((__m128i*)d,_mm_and_si128(v,keep)); ok&=L<=10;
    p+=L; ok&=*p=='\t'; p++;
    LIM
    uint32_t pos; p=pint(p,pos,ok); CHK memcpy(d+10,&pos,4); ok&=*p=='\t'; p++;
    LIM
    float pct; p=pdec(p,pct,ok); CHK memcpy(d+14,&pct,4); ok&=*p=='\t'; p++;
    LIM
    uint32_t c; p=pint(p,c,ok); CHK memcpy(d+18,&c,4); ok&=*p=='\t'; p++;
    LIM
    uint32_t t; p=pint(p,t,ok); CHK memcpy(d+22,&t,4);
#ifdef CR
    if(*p=='\r' && limit-p>=2) ++p;
#endif
    ok&=*p=='\n'; p++;
#ifdef NULLS
  return ok?p:nullptr;
#else
  return p;
#endif
}
int main(int argc,char**argv){
  int fd=open(argv[1],O_RDONLY); struct stat st; fstat(fd,&st);
  const char*base=(const char*)mmap(0,st.st_size,PROT_READ,MAP_PRIVATE|MAP_POPULATE,fd,0);
  const char*end=base+st.st_size-64;
  std::vector<char> out(11000000ull*26);
  double best=1e9;
  for(int r=0;r<7;r++){
  auto t0=std::chrono::steady_clock::now();
  const char*p=base; char*d=out.data(); bool ok=true; size_t rows=0;
  const char*limit=base+st.st_size;
#ifdef TWO // two independent halves of the text in one loop: their latencies overlap
  const char*mid=(const char*)memchr(base+(end-base)/2,'\n',1000)+1;
  const char*pb=mid; char*db=out.data()+(11000000ull/2)*26;
  while(p<mid && pb<end){ p=row(p,d,ok,limit); pb=row(pb,db,ok,limit); d+=26; db+=26; rows+=2; if(!p||!pb) break; }
  for(;p&&p<mid;d+=26,rows++) p=row(p,d,ok,limit);
  for(;pb&&pb<end;db+=26,rows++) pb=row(pb,db,ok,limit);
#else
  for(;p<end;d+=26,rows++){ const char*n=row(p,d,ok,limit); if(!n) break; p=n; }
#endif
  auto t1=std::chrono::steady_clock::now();
  double s=std::chrono::duration<double>(t1-t0).count(); if(s<best)best=s;
  if(r==6) printf("best %.3f s rows %zu ok %d\n",best,rows,ok);}
}
