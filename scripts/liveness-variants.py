#!/usr/bin/env python3
"""Liveness cost experiments (BENCHMARKS.md, issue 16).

1. Per-model CPU time of both MiniFASNets at each ONNX Runtime optimisation level.
2. Static int8 (QDQ, per-channel) quantisation calibrated on 64 NUAA frames, compared with
   fp32 on 300 others: time, score change, and how often the call at 0.5 flips.

Needs: pip install onnxruntime==1.31.1 numpy onnx sympy opencv-python-headless
Run pinned to one core: GATEHOUSE_SHARED=../shared taskset -c 1 python3 scripts/liveness-variants.py
"""
import csv, os, sys, time

import cv2
import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantFormat, QuantType
from onnxruntime.quantization.shape_inference import quant_pre_process

SHARED = os.environ.get("GATEHOUSE_SHARED", "../shared")
M = SHARED + "/models/"
root = SHARED + "/faces/liveness/nuaa/"


def sess(path, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, extra=None):
    o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
    o.graph_optimization_level = level
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if extra: extra(o)
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])

x=np.random.RandomState(0).uniform(0,255,(1,3,80,80)).astype(np.float32)
def bench(s, n=300):
    name=s.get_inputs()[0].name
    for _ in range(20): s.run(None,{name:x})
    t=[]
    for _ in range(n):
        a=time.thread_time(); s.run(None,{name:x}); t.append(time.thread_time()-a)
    t.sort(); return 1000*t[len(t)//2], 1000*t[int(len(t)*0.1)]
for m in ['minifasnet_v2_80x80.onnx','minifasnet_v1se_80x80.onnx']:
    for lvl in ['ORT_ENABLE_BASIC','ORT_ENABLE_EXTENDED','ORT_ENABLE_ALL']:
        s=sess(M+m, getattr(ort.GraphOptimizationLevel,lvl))
        print(m, lvl, 'median/p10 CPU ms: %.2f %.2f'%bench(s)); sys.stdout.flush()
    s=sess(M+m, extra=lambda o:(o.add_session_config_entry('session.intra_op.allow_spinning','0')))
    print(m,'nospin', '%.2f %.2f'%bench(s))

# --- int8 ---
rows=list(csv.DictReader(open(root+'labels.csv')))
print(rows[0], len(rows))
def load(r):
    p=os.path.join(root,'img',r['file']) if os.path.exists(os.path.join(root,'img',r['file'])) else os.path.join(root,r['file'])
    im=cv2.imread(p); h,w=im.shape[:2]
    # centre square crop approximating a face crop, resized to 80x80 like the recipe (BGR raw)
    s=min(h,w); y=(h-s)//2; x=(w-s)//2
    c=cv2.resize(im[y:y+s,x:x+s],(80,80)).astype(np.float32)
    return c.transpose(2,0,1)[None]
rng=np.random.RandomState(1); idx=rng.permutation(len(rows))
calib=[load(rows[i]) for i in idx[:64]]
test=[(load(rows[i]),rows[i]['label']) for i in idx[64:364]]
class R(CalibrationDataReader):
    def __init__(s,name): s.it=iter([{name:c} for c in calib])
    def get_next(s): return next(s.it,None)
def sm(z): z=z-z.max(); e=np.exp(z); return e/e.sum()
def bench_q(s,n=200):
    name=s.get_inputs()[0].name; x=calib[0]
    for _ in range(20): s.run(None,{name:x})
    t=[]
    for _ in range(n):
        a=time.thread_time(); s.run(None,{name:x}); t.append(time.thread_time()-a)
    t.sort(); return 1000*t[len(t)//2]
for m in ['minifasnet_v2_80x80','minifasnet_v1se_80x80']:
    src=M+m+'.onnx'; pre='/tmp/'+m+'_pre.onnx'; q='/tmp/'+m+'_int8.onnx'
    quant_pre_process(src,pre)
    name=sess(src).get_inputs()[0].name
    quantize_static(pre,q,R(name),quant_format=QuantFormat.QDQ,per_channel=True,weight_type=QuantType.QInt8,activation_type=QuantType.QUInt8)
    a=sess(src); b=sess(q)
    fa=[sm(a.run(None,{name:x})[0][0])[1] for x,_ in test]
    fb=[sm(b.run(None,{name:x})[0][0])[1] for x,_ in test]
    fa=np.array(fa); fb=np.array(fb)
    print(m,'fp32 ms %.2f int8 ms %.2f'%(bench_q(a),bench_q(b)),'max|d| %.4f mean|d| %.4f corr %.4f'%(np.abs(fa-fb).max(),np.abs(fa-fb).mean(),np.corrcoef(fa,fb)[0,1]))
    print(' agree at 0.5:', np.mean((fa>0.5)==(fb>0.5)), 'size', os.path.getsize(q))
    sys.stdout.flush()
