import sys
import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'robustness-2026-11-28b'))
from image_stats import readpng  # the pure-Python PNG reader
from cc import comps
d='/work/shared/data/nuclei2d/nih3t3/'
pre=sys.argv[1]
for k in (16,17):
    w,h,m=readpng(d+'mask-%02d.png'%k); _,_,p=readpng(pre+'-%02d.png'%k)
    gt=[1 if v else 0 for r in m for v in r]; pr=[1 if v else 0 for r in p for v in r]
    tp=sum(1 for a,b in zip(gt,pr) if a and b); fp=sum(1 for a,b in zip(gt,pr) if b and not a); fn=sum(1 for a,b in zip(gt,pr) if a and not b)
    print(k,'tp',tp,'fp',fp,'fn',fn)
    # FP components: predicted components with no gt overlap
    lab,sz=comps(pr,w,h); hit=set(l for l,a in zip(lab,gt) if l and a)
    orphan=[sz[l] for l in range(1,len(sz)) if l not in hit]
    print('  pred comps without gt:',len(orphan),'pixels',sum(orphan),'largest',sorted(orphan)[-5:])
    glab,gsz=comps(gt,w,h); ghit=set(l for l,a in zip(glab,pr) if l and a)
    miss=[gsz[l] for l in range(1,len(gsz)) if l not in ghit]
    print('  gt comps missed:',len(miss),'pixels',sum(miss))
