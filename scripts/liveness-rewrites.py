#!/usr/bin/env python3
"""Which graph rewrites make ONNX Runtime run the MiniFASNets fast (BENCHMARKS.md, "Liveness", cost).

The experiment behind `src/onnx/rewrite.rs`: the same rewrites done with the `onnx` package, each
variant's thread CPU time (median of 200 runs, variants interleaved) and its largest output
difference from the published graph.
  MM     PReLU as Max(x, s*x)
  PAD    pruned widths padded with zero channels to a multiple of 16
  PADMM  both
  PADDW  padding, and PReLU as x + (1-s)*Relu(-x) with 1x1 depthwise convolutions (what x86-64 runs)

Needs: pip install onnxruntime==1.31.1 numpy onnx
Run pinned to one core: GATEHOUSE_SHARED=../shared taskset -c 1 python3 scripts/liveness-rewrites.py
"""
import collections, os, tempfile, time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

ort.set_default_logger_severity(3)
M = os.environ.get("GATEHOUSE_SHARED", "../shared") + "/models/"
BLOCK = 16


def up(c):
    return (c + BLOCK - 1) // BLOCK * BLOCK


def transform(path, out, pad, prelu):
    m = onnx.load(path)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    get = lambda n: numpy_helper.to_array(inits[n])
    put = lambda n, a: inits[n].CopyFrom(numpy_helper.from_array(a.astype(np.float32), n))
    group = lambda n: next((a.i for a in n.attribute if a.name == "group"), 1)
    consumers = collections.defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
    if pad:
        for n in g.node:
            if n.op_type != "Conv" or group(n) != 1:
                continue
            c = get(n.input[1]).shape[0]
            if c % BLOCK == 0:
                continue
            p = up(c) - c
            chain, node = [n], consumers[n.output[0]][0]
            while True:
                if node.op_type == "PRelu" or (node.op_type == "Conv" and group(node) == c):
                    chain.append(node)
                    node = consumers[node.output[0]][0]
                    continue
                assert node.op_type == "Conv" and group(node) == 1, node.op_type
                chain.append(node)
                break
            for k in chain:
                w = get(k.input[1])
                if k.op_type == "PRelu":
                    put(k.input[1], np.concatenate([w, np.zeros((p,) + w.shape[1:])]))
                elif k is chain[-1]:
                    put(k.input[1], np.concatenate([w, np.zeros((w.shape[0], p) + w.shape[2:])], axis=1))
                else:
                    put(k.input[1], np.concatenate([w, np.zeros((p,) + w.shape[1:])]))
                    if len(k.input) > 2:
                        b = get(k.input[2])
                        put(k.input[2], np.concatenate([b, np.zeros(p)]))
                    for a in k.attribute:
                        if a.name == "group" and a.i == c:
                            a.i = up(c)
    if prelu:
        new = []
        for n in g.node:
            if n.op_type != "PRelu":
                new.append(n)
                continue
            x, s, o = n.input[0], n.input[1], n.output[0]
            if prelu == "max":
                new += [helper.make_node("Mul", [x, s], [o + "_sx"]), helper.make_node("Max", [x, o + "_sx"], [o])]
            else:
                sl = get(s).reshape(-1)
                c = sl.size
                g.initializer.extend([
                    numpy_helper.from_array(-np.ones((c, 1, 1, 1), np.float32), s + "_neg"),
                    numpy_helper.from_array((1 - sl).reshape(c, 1, 1, 1).astype(np.float32), s + "_1ms"),
                ])
                new += [
                    helper.make_node("Conv", [x, s + "_neg"], [o + "_t"], group=c, kernel_shape=[1, 1]),
                    helper.make_node("Relu", [o + "_t"], [o + "_r"]),
                    helper.make_node("Conv", [o + "_r", s + "_1ms"], [o + "_u"], group=c, kernel_shape=[1, 1]),
                    helper.make_node("Add", [o + "_u", x], [o]),
                ]
        del g.node[:]
        g.node.extend(new)
    onnx.save(m, out)


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


x = np.random.RandomState(0).rand(4, 3, 80, 80).astype(np.float32) * 255
tmp = tempfile.mkdtemp()
for name in ["minifasnet_v2_80x80.onnx", "minifasnet_v1se_80x80.onnx"]:
    variants = {"published": M + name}
    for label, pad, prelu in [("MM", False, "max"), ("PAD", True, None), ("PADMM", True, "max"), ("PADDW", True, "dw")]:
        variants[label] = f"{tmp}/{label}_{name}"
        transform(M + name, variants[label], pad, prelu)
    sessions = {k: session(v) for k, v in variants.items()}
    reference = sessions["published"].run(None, {"input": x})[0]
    times = {k: [] for k in sessions}
    for _ in range(200):
        for k, s in sessions.items():
            t = time.thread_time()
            s.run(None, {"input": x[:1]})
            times[k].append(time.thread_time() - t)
    for k, s in sessions.items():
        diff = np.abs(s.run(None, {"input": x})[0] - reference).max()
        print(f"{name} {k:9s} {np.median(times[k]) * 1e3:6.2f} ms  max |Δlogit| {diff:.1e}")
