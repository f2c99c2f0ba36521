// Prototype (not part of the library): the structural alternative to the row program. Separator and
// newline bit masks per 64 bytes, then each field converted between known bounds (no fallback path, no
// comment or CR handling: a lower bound on its cost). On the 300 MB coverage slice, one thread: first
// 0.75-0.91 s (single repetitions) against 0.58-0.64 s for a switch-per-field version of the chained digit
// scanners (the approach src/loadtxt/parser.cpp took); run again interleaved with the finished row
// program (bench/parse_bench.cpp): 0.57-0.60 s vs 0.59-0.84 s. So: not clearly faster here, and the
// library's checks would add to it. Not taken; worth trying again with AVX2 and a multi-field
// conversion on a machine with quieter timings. 2026-11-26, project VM.
// Build: g++ -O2 -std=c++20 -Isrc -Iinclude [-DHARD] [-DUSE_AVX2] -o /tmp/stream bench/prototypes/stream.cpp
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
#include <immintrin.h>
#include "loadtxt/fields.hpp"
using namespace ndshm; using namespace ndshm::detail;
static const uint64_t P10[]={1,10,100,1000,10000,100000,1000000,10000000,100000000};
static const double D10[]={1,10,100,1000,10000,100000,1000000,10000000,100000000};
#ifdef USE_AVX2
__attribute__((target("avx2")))
static inline uint64_t eqm(const char*p,char c){
  __m256i a=_mm256_loadu_si256((const __m256i*)p),b=_mm256_loadu_si256((const __m256i*)(p+32));
  __m256i k=_mm256_set1_epi8(c);
  return (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a,k))|((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b,k))<<32);
}
#else
static inline uint64_t eqm(const char*p,char c){uint64_t m=0;for(int k=0;k<4;k++)m|=(uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i*)(p+16*k)),_mm_set1_epi8(c)))<<(16*k);return m;}
#endif
static inline bool int_known(const char*b,const char*e,bool&neg,uint64_t&mag){
  neg=*b=='-'; const char*d=b+(*b=='-'||*b=='+'); size_t L=e-d;
  if(L-1>=16) return false;
  uint64_t x=digit_bytes(d);
  if(L<=8){ mag=digits_value(x,L); return leading_digits(x)>=L;}
  uint64_t y=digit_bytes(d+8); mag=digits_value(x,8)*P10[L-8]+digits_value(y,L-8); return (leading_digits(x)==8)&(leading_digits(y)>=L-8);
}
static inline bool float_known(const char*b,const char*e,double&v){
  const char*d=b+(*b=='-'||*b=='+'); size_t L=e-d;
  if(L-1>=8) { return scan_plain_decimal(b,v)==e; }
  uint64_t x=digit_bytes(d); unsigned k=leading_digits(x);
  if(k>=L){ v=(double)digits_value(x,L); v=*b=='-'?-v:v; return true;}
  unsigned m=L-k-1; uint64_t y=(x>>(8*k))>>8;
  bool ok=((x>>(8*k))&0xFF)==('.'^'0') && leading_digits(y)>=m && (k+m)>0;
  uint64_t whole=k?digits_value(x,k):0, frac=m?digits_value(y,m):0;
  v=(double)(whole*P10[m]+frac)/D10[m]; v=*b=='-'?-v:v; return ok;
}
int main(int argc,char**argv){
  int fd=open(argv[1],O_RDONLY); struct stat st; fstat(fd,&st);
  const char*base=(const char*)mmap(0,st.st_size,PROT_READ,MAP_PRIVATE|MAP_POPULATE,fd,0);
  const char*limit=base+st.st_size;
  std::vector<field_spec> fields = {{field_kind::bytes, 10, 0, false, "S10"},
                                    {field_kind::signed_int, 4, 10, false, "int32"},
                                    {field_kind::floating, 4, 14, false, "float32"},
                                    {field_kind::signed_int, 4, 18, false, "int32"},
                                    {field_kind::signed_int, 4, 22, false, "int32"}};
  size_t n=fields.size();
  std::vector<std::byte> out(11000000ull*26);
  for(int r=0;r<5;r++){
  auto t0=std::chrono::steady_clock::now();
  const char*q=base; std::byte*dest=out.data(); size_t rows=0, bad=0;
  const char*s=q; uint64_t nls=eqm(s,'\n'); uint64_t seps=eqm(s,'\t')|nls|eqm(s,'#');
  for(;;){
    const char*row=q; bool ok=true; bool stop=false;
    for(size_t f=0;f<n;f++){
      while(seps==0){ s+=64; if(limit-s<128){stop=true;break;} nls=eqm(s,'\n'); seps=eqm(s,'\t')|nls|eqm(s,'#'); }
      if(stop)break;
      unsigned b=std::countr_zero(seps); const char*pos=s+b; seps&=seps-1;
      bool nl=(nls>>b)&1; ok&=nl==(f==n-1);
      const field_spec&fs=fields[f]; std::byte*o=dest+fs.offset;
#ifdef HARD
      if(f==0){size_t L=pos-q; ok&=L<=10;
        __m128i keep=_mm_cmplt_epi8(_mm_setr_epi8(0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15),_mm_set1_epi8((char)L));
        _mm_storeu_si128((__m128i*)o,_mm_and_si128(_mm_loadu_si128((const __m128i*)q),keep));}
      else if(f==2){double v; ok&=float_known(q,pos,v); float x=(float)v; memcpy(o,&x,4);}
      else {bool neg;uint64_t m; ok&=int_known(q,pos,neg,m); ok&=m<0x80000000u; int32_t x=neg?-(int32_t)m:(int32_t)m; memcpy(o,&x,4);}
#else
      switch(fs.kind){
      case field_kind::floating:{double v; ok&=float_known(q,pos,v); store_floating(fs,v,o);break;}
      case field_kind::signed_int: case field_kind::unsigned_int: case field_kind::boolean:{bool neg;uint64_t m; ok&=int_known(q,pos,neg,m); ok&=store_integer(fs,neg,m,o);break;}
      case field_kind::bytes:{size_t L=pos-q; ok&=L<=fs.size;
        __m128i keep=_mm_cmplt_epi8(_mm_setr_epi8(0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15),_mm_set1_epi8((char)L));
        _mm_storeu_si128((__m128i*)o,_mm_and_si128(_mm_loadu_si128((const __m128i*)q),keep));break;}
      }
#endif
      q=pos+1;
    }
    if(stop)break;
    if(!ok){bad++;}
    dest+=26; rows++;
  }
  auto t1=std::chrono::steady_clock::now();
  printf("%.3f s rows %zu bad %zu\n",std::chrono::duration<double>(t1-t0).count(),rows,bad);}
}
