"""The models of bench/pytorch.sh, made with .venv's torch (fixed seed).

    .venv/bin/python bench/torch_models.py REPO WORK [--cnn-size N] [--mlp-hidden H]

writes into the model repository REPO:
  mlp               a small MLP as TorchScript (torch.jit.script of an
                    nn.Sequential): mlp_classifier's interface, input "input"
                    FP32 [16] (a forward argument name: Triton's
                    FORWARD_ARGUMENT convention) -> Linear(64) ReLU Linear(64)
                    ReLU Linear(10) Softmax -> "probabilities" FP32 [10]
                    (--mlp-hidden H: H instead of 64)
  resnet18          ResNet-18's layout from torch.nn (7x7 conv, max pool, four
                    stages of two BasicBlocks at 64/128/256/512 channels,
                    average pool, 1000-way Linear: 11,689,512 parameters, as
                    torchvision's resnet18), traced in eval mode; INPUT__0 FP32
                    [3,N,N] -> OUTPUT__0 FP32 [1000] (the NAMED_INDEX
                    convention)
  mlp_batched, resnet18_batched
                    the same files with `dynamic_batching { }`
each with max_batch_size 64 and one CPU instance (the backend's defaults:
intra-op 1, inter-op 1, inference mode, optimized execution). And into WORK:
  resnet18_body.bin one HTTP binary-extension request body for resnet18
                    (JSON header, then the FP32 bytes of one image)
  resnet18_body.len the JSON header's length (Inference-Header-Content-Length)
It prints "resnet18 parameters=<count>".
"""

import argparse
import json
import os

import numpy as np
import torch
from torch import nn

SEED = 20


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Identity()
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.downsample(x))


class ResNet18(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def write_model(repo, name, module, inputs, outputs, batched):
    os.makedirs(os.path.join(repo, name, "1"), exist_ok=True)
    torch.jit.save(module, os.path.join(repo, name, "1", "model.pt"))
    io = lambda items: ",\n".join(
        f'  {{ name: "{n}" data_type: TYPE_FP32 dims: [ {", ".join(map(str, d))} ] }}'
        for n, d in items)
    config = (f'name: "{name}"\nplatform: "pytorch_libtorch"\nmax_batch_size: 64\n'
              f"input [\n{io(inputs)}\n]\noutput [\n{io(outputs)}\n]\n"
              "instance_group [ { count: 1 kind: KIND_CPU } ]\n")
    if batched:
        config += "dynamic_batching { }\n"
    with open(os.path.join(repo, name, "config.pbtxt"), "w") as f:
        f.write(config)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo")
    parser.add_argument("work")
    parser.add_argument("--cnn-size", type=int, default=64, help="the CNN's image side (64)")
    parser.add_argument("--mlp-hidden", type=int, default=64, help="the MLP's hidden width (64)")
    args = parser.parse_args()
    torch.manual_seed(SEED)

    h = args.mlp_hidden
    mlp = nn.Sequential(nn.Linear(16, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                        nn.Linear(h, 10), nn.Softmax(dim=-1)).eval()
    mlp_ts = torch.jit.script(mlp)
    cnn = ResNet18().eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for m in cnn.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    n = args.cnn_size
    example = torch.rand(1, 3, n, n)
    with torch.no_grad():
        cnn_ts = torch.jit.trace(cnn, example)
    for batched in (False, True):
        suffix = "_batched" if batched else ""
        write_model(args.repo, "mlp" + suffix, mlp_ts, [("input", [16])],
                    [("probabilities", [10])], batched)
        write_model(args.repo, "resnet18" + suffix, cnn_ts, [("INPUT__0", [3, n, n])],
                    [("OUTPUT__0", [1000])], batched)

    image = np.random.default_rng(SEED).random((1, 3, n, n), dtype=np.float32)
    header = json.dumps({
        "inputs": [{"name": "INPUT__0", "shape": [1, 3, n, n], "datatype": "FP32",
                    "parameters": {"binary_data_size": image.nbytes}}],
        "outputs": [{"name": "OUTPUT__0", "parameters": {"binary_data": True}}],
    }, separators=(",", ":")).encode()
    with open(os.path.join(args.work, "resnet18_body.bin"), "wb") as f:
        f.write(header + image.tobytes())
    with open(os.path.join(args.work, "resnet18_body.len"), "w") as f:
        f.write(str(len(header)))
    print(f"resnet18 parameters={sum(p.numel() for p in cnn.parameters())}")


if __name__ == "__main__":
    main()
