"""PyTorch beside wunet on a CUDA machine: the U-Net training steps and the
conv sizes of `wunet bench`, in three PyTorch settings:

  f32      float32, TF32 off (cuDNN and matmul)          -- like wunet --precision f32
  tf32     PyTorch defaults (cuDNN convolutions in TF32)
  amp      autocast float16 + GradScaler, channels_last   -- like wunet --precision mixed

The networks are wunet's `bench unet2d|unet3d` networks (src/cli/bench.rs,
src/models/unet.rs): same padding, batch norm after every conv (conv bias on),
ReLU, 2x2(x2) max pooling, 2x2(x2) stride-2 transposed convs, skip first in
the concatenation, 1x1 head, 2 classes, mean cross entropy, SGD momentum 0.99.
2D: base 32, depth 4, Ronneberger channels, 2x1x256x256. 3D: base 16, depth 3,
Cicek channels (up-convs keep channels, no up-conv bias), 1x1x64x64x64.

Each timing is the median of CUDA-event times after warm-up. Output: one
human line and one JSON line (prefix `json: `) per measurement.
Usage: python3 tools/torch_unet_bench.py [--runs N] [--only unet|conv]
"""
import argparse
import json
import torch
import torch.nn as nn
import torch.nn.functional as F

dev = "cuda"


def median_ms(fn, runs, warm=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(runs):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def set_mode(mode):
    tf32 = mode != "f32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = False if mode == "f32" else torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.benchmark = True


class Block(nn.Module):
    def __init__(self, dims, cin, c1, c2):
        super().__init__()
        Conv = nn.Conv3d if dims == 3 else nn.Conv2d
        BN = nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d
        self.c1, self.b1 = Conv(cin, c1, 3, padding=1), BN(c1)
        self.c2, self.b2 = Conv(c1, c2, 3, padding=1), BN(c2)

    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(x)))


class UNet(nn.Module):
    """wunet's UNetConfig with padding Same and norm Batch."""

    def __init__(self, dims, base, depth, scheme, classes=2, cin=1):
        super().__init__()
        lvl = lambda l: base << l
        enc_ch = (lambda l: (lvl(l), lvl(l))) if scheme == "ronneberger" else (lambda l: (lvl(l), lvl(l + 1)))
        ConvT = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
        self.pool = F.max_pool3d if dims == 3 else F.max_pool2d
        self.enc = nn.ModuleList()
        c = cin
        skips = []
        for l in range(depth):
            c1, c2 = enc_ch(l)
            self.enc.append(Block(dims, c, c1, c2))
            c = c2
            skips.append(c)
        c1, c2 = enc_ch(depth)
        self.bottom = Block(dims, c, c1, c2)
        c = c2
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for l in reversed(range(depth)):
            cu = lvl(l) if scheme == "ronneberger" else c
            self.up.append(ConvT(c, cu, 2, stride=2, bias=(scheme == "ronneberger")))
            cd = lvl(l) if scheme == "ronneberger" else lvl(l + 1)
            self.dec.append(Block(dims, skips[l] + cu, cd, cd))
            c = cd
        Conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.head = Conv(c, classes, 1)

    def forward(self, x):
        skips = []
        for b in self.enc:
            x = b(x)
            skips.append(x)
            x = self.pool(x, 2)
        x = self.bottom(x)
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            x = dec(torch.cat([skips.pop(), x], 1))
        return self.head(x)


def unet_step(dims, mode, runs):
    set_mode(mode)
    torch.manual_seed(1)
    if dims == 2:
        net, shape = UNet(2, 32, 4, "ronneberger"), (2, 1, 256, 256)
    else:
        net, shape = UNet(3, 16, 3, "cicek"), (1, 1, 64, 64, 64)
    net = net.to(dev)
    fmt = (torch.channels_last_3d if dims == 3 else torch.channels_last) if mode == "amp" else torch.contiguous_format
    net = net.to(memory_format=fmt)
    x = torch.randn(*shape, device=dev).to(memory_format=fmt)
    y = (torch.arange(x.numel(), device=dev).reshape(shape[0], *shape[2:]) // 7 % 2).long()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99)
    scaler = torch.amp.GradScaler("cuda", enabled=(mode == "amp"))

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16, enabled=(mode == "amp")):
            loss = F.cross_entropy(net(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    ms = median_ms(step, runs)
    name = "unet2d base 32 depth 4 BN 2x1x256x256" if dims == 2 else "unet3d base 16 depth 3 BN 1x1x64x64x64"
    return name, ms


CONVS = [
    ("conv2d 1x64x256x256->64 k3", (1, 64, 256, 256), (64, 64, 3, 3), 1, 1, False),
    ("convT2d 1x128x128x128->64 k2s2", (1, 128, 128, 128), (128, 64, 2, 2), 2, 0, True),
    ("conv3d 1x32x64^3->32 k3", (1, 32, 64, 64, 64), (32, 32, 3, 3, 3), 1, 1, False),
    ("conv2d 8x256x64x64->256 k3", (8, 256, 64, 64), (256, 256, 3, 3), 1, 1, False),
]


def conv_case(case, mode, runs):
    name, xs, ws, stride, pad, transpose = case
    set_mode(mode)
    dims = len(xs) - 2
    dt = torch.float16 if mode == "amp" else torch.float32
    fmt = (torch.channels_last_3d if dims == 3 else torch.channels_last) if mode == "amp" else torch.contiguous_format
    x = torch.randn(*xs, device=dev, dtype=dt).to(memory_format=fmt).requires_grad_()
    w = torch.randn(*ws, device=dev, dtype=dt).to(memory_format=fmt).requires_grad_()
    if transpose:
        op = F.conv_transpose3d if dims == 3 else F.conv_transpose2d
    else:
        op = F.conv3d if dims == 3 else F.conv2d
    f = lambda: op(x, w, stride=stride, padding=pad)
    y = f()
    g = torch.randn_like(y)
    k = 1
    for d in ws[2:]:
        k *= d
    macs = (x.numel() // xs[1] * ws[1] * xs[1] * k) if transpose else (y.numel() * xs[1] * k)
    fwd = median_ms(f, runs)
    fb = median_ms(lambda: torch.autograd.grad(f(), (x, w), g), runs)
    return name, fwd, 2 * macs / fwd / 1e9, fb, 6 * macs / fb / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--only", choices=["unet", "conv"], default=None)
    a = ap.parse_args()
    gpu = torch.cuda.get_device_name(0)
    print(f"device: {gpu}, torch {torch.__version__}, cudnn {torch.backends.cudnn.version()}")
    modes = ["f32", "tf32", "amp"]
    if a.only != "conv":
        for dims in (2, 3):
            for mode in modes:
                try:
                    name, ms = unet_step(dims, mode, a.runs)
                except Exception as e:  # report and go on: one sitting, every figure we can get
                    print(f"torch {mode} unet{dims}d: FAILED {type(e).__name__}: {e}")
                    continue
                print(f"torch {mode:<4} {name}: {ms:.2f} ms/step", flush=True)
                print("json: " + json.dumps({"impl": "torch", "device": gpu, "mode": mode, "bench": name, "median_ms": round(ms, 4)}))
    if a.only != "unet":
        for case in CONVS:
            for mode in modes:
                try:
                    name, f, ftf, fb, fbtf = conv_case(case, mode, a.runs)
                except Exception as e:
                    print(f"torch {mode} {case[0]}: FAILED {type(e).__name__}: {e}")
                    continue
                print(f"torch {mode:<4} {name}: fwd {f:.3f} ms {ftf:.1f} TFLOP/s | fwd+bwd {fb:.3f} ms {fbtf:.1f} TFLOP/s", flush=True)
                print("json: " + json.dumps({"impl": "torch", "device": gpu, "mode": mode, "bench": name, "fwd_ms": round(f, 4), "fwd_tflops": round(ftf, 2), "fwdbwd_ms": round(fb, 4), "fwdbwd_tflops": round(fbtf, 2)}))


if __name__ == "__main__":
    main()
