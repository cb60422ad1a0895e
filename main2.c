#include <stdio.h>
#include <stdlib.h>
#include <time.h>
void mm4(const float *x, int M, int K, const float *w, int n0, int n1, float *y, int ldy);
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){ int N=1536*2,K=576; float*w=aligned_alloc(64,sizeof(float)*N*K),*x=aligned_alloc(64,sizeof(float)*16*K),*y=malloc(sizeof(float)*16*N);
for(int i=0;i<N*K;i++)w[i]=(i%7)*0.1f; for(int i=0;i<16*K;i++)x[i]=(i%5)*0.1f;
for(int m=1;m<=16;m*=2){ double t0=now(); int reps=200; for(int r=0;r<reps;r++) mm4(x,m,K,w,0,N,y,N); double dt=(now()-t0)/reps;
printf("M=%d: %.3f ms, %.1f GFLOP/s\n", m, dt*1e3, 2.0*m*N*K/dt/1e9);} }
