import zlib, struct, sys, statistics as st
def readpng(path):
    b=open(path,'rb').read(); assert b[:8]==b'\x89PNG\r\n\x1a\n'
    i=8; idat=b''; 
    while i<len(b):
        n=struct.unpack('>I',b[i:i+4])[0]; t=b[i+4:i+8]; d=b[i+8:i+8+n]; i+=12+n
        if t==b'IHDR': w,h,bd,ct=struct.unpack('>IIBB',d[:10])
        elif t==b'IDAT': idat+=d
    assert bd==8, (path,bd,ct)
    ch={0:1,2:3,4:2,6:4}[ct]; bpp=ch
    raw=zlib.decompress(idat); stride=w*bpp; out=[]; prev=bytearray(stride); p=0
    for y in range(h):
        f=raw[p]; line=bytearray(raw[p+1:p+1+stride]); p+=1+stride
        for x in range(stride):
            a=line[x-bpp] if x>=bpp else 0; c=prev[x-bpp] if x>=bpp else 0; up=prev[x]
            if f==1: line[x]=(line[x]+a)&255
            elif f==2: line[x]=(line[x]+up)&255
            elif f==3: line[x]=(line[x]+(a+up)//2)&255
            elif f==4:
                pa=abs(up-c); pb=abs(a-c); pc=abs(a+up-2*c)
                pr=a if pa<=pb and pa<=pc else (up if pb<=pc else c)
                line[x]=(line[x]+pr)&255
        out.append(line[::bpp]); prev=line
    return w,h,out
if __name__ == '__main__':
    d='/work/shared/data/nuclei2d/nih3t3/'
    for k in range(18):
        w,h,im=readpng(d+'image-%02d.png'%k); _,_,m=readpng(d+'mask-%02d.png'%k)
        v=[x for r in im for x in r]; mk=[x for r in m for x in r]
        fg=sorted(a for a,b in zip(v,mk) if b>0); bg=sorted(a for a,b in zip(v,mk) if b==0)
        lo,hi=min(v),max(v); nf=st.median(fg); nb=st.median(bg)
        g=lambda x:lo+(hi-lo)*((x-lo)/(hi-lo))**2
        sat=sum(1 for x in v if x>=250)
        print(f"image-{k:02d} {w}x{h} min {lo} max {hi} p99.9 {sorted(v)[int(len(v)*0.999)]} >=250: {sat} nuclei med {nf} bg med {nb}  contrast after gamma2/before {(g(nf)-g(nb))/(nf-nb):.3f}")
