"""PyTorch (cuDNN, fp32, TF32 off) timings at wunet's reference conv sizes, for scale.
Run on a CUDA machine: python3 tools/torch_conv_bench.py"""
import torch, torch.nn.functional as F

torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.benchmark = True
dev = "cuda"


def t(fn, reps=30):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def case(name, x_shape, w_shape, stride, pad, transpose=False):
    x = torch.randn(*x_shape, device=dev, requires_grad=True)
    w = torch.randn(*w_shape, device=dev, requires_grad=True)
    op = (F.conv_transpose3d if len(x_shape) == 5 else F.conv_transpose2d) if transpose else (F.conv3d if len(x_shape) == 5 else F.conv2d)
    y = op(x, w, stride=stride, padding=pad)
    g = torch.randn_like(y)
    k = 1
    for d in w_shape[2:]:
        k *= d
    macs = (x.numel() // x_shape[1] * w_shape[1] * x_shape[1] * k) if transpose else (y.numel() * x_shape[1] * k)
    f = t(lambda: op(x, w, stride=stride, padding=pad))
    fb = t(lambda: torch.autograd.grad(op(x, w, stride=stride, padding=pad), (x, w), g))
    print(f"{name}: fwd {f:.3f} ms {2*macs/f/1e9:.1f} TFLOP/s | fwd+bwd {fb:.3f} ms {6*macs/fb/1e9:.1f} TFLOP/s")


case("conv2d 1x64x256x256->64 k3", (1, 64, 256, 256), (64, 64, 3, 3), 1, 1)
case("convT2d 1x128x128x128->64 k2s2", (1, 128, 128, 128), (128, 64, 2, 2), 2, 0, True)
case("conv3d 1x32x64^3->32 k3", (1, 32, 64, 64, 64), (32, 32, 3, 3, 3), 1, 1)
case("conv2d 8x256x64x64->256 k3", (8, 256, 64, 64), (256, 256, 3, 3), 1, 1)
