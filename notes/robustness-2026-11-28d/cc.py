import sys
import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'robustness-2026-11-28b'))
from image_stats import readpng  # the pure-Python PNG reader
def comps(mask,w,h):
    lab=[0]*(w*h); sizes=[0]; n=0
    for s in range(w*h):
        if mask[s] and not lab[s]:
            n+=1; lab[s]=n; st=[s]; c=0
            while st:
                p=st.pop(); c+=1; y,x=divmod(p,w)
                for q,ok in ((p-1,x>0),(p+1,x<w-1),(p-w,y>0),(p+w,y<h-1)):
                    if ok and mask[q] and not lab[q]: lab[q]=n; st.append(q)
            sizes.append(c)
    return lab,sizes
def dice(a,b):
    i=sum(1 for x,y in zip(a,b) if x and y); return 2*i/(sum(a)+sum(b))
if __name__=='__main__':
    d='/work/shared/data/nuclei2d/nih3t3/'
    pre=sys.argv[1]
    for k in (16,17):
        w,h,m=readpng(d+'mask-%02d.png'%k); _,_,p=readpng(pre+'-%02d.png'%k)
        gt=[1 if v else 0 for r in m for v in r]; pr=[1 if v else 0 for r in p for v in r]
        lab,sz=comps(pr,w,h); _,gsz=comps(gt,w,h)
        gs=sorted(gsz[1:]); print(k,'dice',round(dice(gt,pr),4),'pred comps',len(sz)-1,'gt comps',len(gs),'gt median',gs[len(gs)//2],'gt min',gs[:5])
        for t in (50,100,200,400):
            keep=[1 if l and sz[l]>=t else 0 for l in lab]
            print('  min',t,'dice',round(dice(gt,keep),4),'removed',sum(1 for s in sz[1:] if s<t))
