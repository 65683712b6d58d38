//! Output-preserving rewrites of an ONNX graph that let ONNX Runtime's fast
//! CPU kernels run it.
//!
//! Why: the MiniFASNet liveness models spend most of their time in two places
//! ONNX Runtime handles slowly (profiled with its own profiler, one thread):
//! - `PRelu` is a generic broadcasting kernel, and it is not one of the
//!   operators the NCHWc layout transformer knows, so each one also costs a
//!   reorder out of and back into the blocked layout. `PRelu(x) = max(x, s·x)`
//!   for slopes `s ≤ 1`, and `Mul` + `Max` are fast vectorised kernels.
//! - The models are pruned: their inner widths (13, 26, 77, 103, 231, 308
//!   channels) are not multiples of the SIMD block, so MLAS cannot use its
//!   blocked (NCHWc) convolutions for them. Padding each such
//!   `1×1 conv → depthwise conv → 1×1 conv` chain with zero channels changes
//!   no output (a zero channel stays zero through PReLU and the depthwise conv,
//!   and meets zero weights in the last conv) and makes every width a multiple
//!   of the block.
//!
//! Measured in BENCHMARKS.md ("Liveness", cost). Each rewrite only applies
//! where its preconditions are checked (slopes ≤ 1, weights used once, each
//! intermediate tensor used once); anything else is left as it was. The
//! caller still compares the rewritten model's output with the original's
//! (`face::liveness`) before using it.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;

use super::proto::{Message, Value};
use crate::models::GraphRewrite as Rewrite;

/// What a rewrite changed, for the log and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub prelus: usize,
    pub padded_chains: usize,
}

/// Channels are padded to a multiple of this: MLAS's NCHWc block is 8 with
/// AVX2 and 16 with AVX-512, so 16 serves both.
pub const CHANNEL_BLOCK: usize = 16;

// ONNX field numbers (onnx.proto).
const MODEL_GRAPH: u32 = 7;
const GRAPH_NODE: u32 = 1;
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_OUTPUT: u32 = 12;
const GRAPH_VALUE_INFO: u32 = 13;
const NODE_INPUT: u32 = 1;
const NODE_OUTPUT: u32 = 2;
const NODE_NAME: u32 = 3;
const NODE_OP_TYPE: u32 = 4;
const NODE_ATTRIBUTE: u32 = 5;
const NODE_DOMAIN: u32 = 7;
const ATTR_NAME: u32 = 1;
const ATTR_I: u32 = 3;
const ATTR_INTS: u32 = 8;
const ATTR_TYPE: u32 = 20;
const ATTR_TYPE_INT: u64 = 2;
const ATTR_TYPE_INTS: u64 = 7;
const TENSOR_DIMS: u32 = 1;
const TENSOR_DATA_TYPE: u32 = 2;
const TENSOR_FLOAT_DATA: u32 = 4;
const TENSOR_NAME: u32 = 8;
const TENSOR_RAW_DATA: u32 = 9;
const TENSOR_DATA_LOCATION: u32 = 14;
const VALUE_INFO_NAME: u32 = 1;
const FLOAT: u64 = 1;

/// What the rewrites are for: whether ONNX Runtime on the machine uses its
/// blocked (NCHWc) layout, which MLAS has on x86-64 only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub blocked_layout: bool,
}

impl Target {
    pub fn this_machine() -> Target {
        Target {
            blocked_layout: cfg!(target_arch = "x86_64"),
        }
    }
}

/// Applies `rewrites` to the serialized model `bytes` for this machine.
pub fn apply(bytes: &[u8], rewrites: &[Rewrite]) -> Result<(Vec<u8>, Changes)> {
    apply_for(bytes, rewrites, Target::this_machine())
}

/// Applies `rewrites` to the serialized model `bytes` for `target`.
pub fn apply_for(bytes: &[u8], rewrites: &[Rewrite], target: Target) -> Result<(Vec<u8>, Changes)> {
    let mut model = Message::decode(bytes).context("not an ONNX model (protobuf)")?;
    let graph_bytes = model
        .bytes(MODEL_GRAPH)
        .next()
        .context("the model has no graph")?
        .to_vec();
    let mut graph = Graph::decode(&graph_bytes)?;
    let mut changes = Changes::default();
    if rewrites.contains(&Rewrite::PadChannels) && target.blocked_layout {
        changes.padded_chains = graph.pad_channels(CHANNEL_BLOCK)?;
    }
    if rewrites.contains(&Rewrite::FastPrelu) {
        changes.prelus = if target.blocked_layout {
            graph.prelu_as_depthwise()?
        } else {
            graph.prelu_as_max()?
        };
    }
    model.set(MODEL_GRAPH, vec![Value::Bytes(graph.encode())]);
    Ok((model.encode(), changes))
}

struct Node {
    msg: Message,
    inputs: Vec<String>,
    outputs: Vec<String>,
    op: String,
}

impl Node {
    fn decode(bytes: &[u8]) -> Result<Node> {
        let msg = Message::decode(bytes)?;
        Ok(Node {
            inputs: msg.strings(NODE_INPUT),
            outputs: msg.strings(NODE_OUTPUT),
            op: msg.string(NODE_OP_TYPE).unwrap_or_default(),
            msg,
        })
    }

    fn new(op: &str, name: &str, inputs: &[&str], output: &str) -> Node {
        let mut msg = Message::default();
        for input in inputs {
            msg.push_bytes(NODE_INPUT, input.as_bytes().to_vec());
        }
        msg.push_bytes(NODE_OUTPUT, output.as_bytes().to_vec());
        msg.push_bytes(NODE_NAME, name.as_bytes().to_vec());
        msg.push_bytes(NODE_OP_TYPE, op.as_bytes().to_vec());
        Node {
            msg,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.to_string()],
            op: op.to_string(),
        }
    }

    /// A 1×1 depthwise convolution over `channels` channels.
    fn depthwise_1x1(name: &str, input: &str, weight: &str, output: &str, channels: usize) -> Node {
        let mut node = Node::new("Conv", name, &[input, weight], output);
        let mut group = Message::default();
        group.push_bytes(ATTR_NAME, b"group".to_vec());
        group.push_varint(ATTR_I, channels as u64);
        group.push_varint(ATTR_TYPE, ATTR_TYPE_INT);
        let mut kernel = Message::default();
        kernel.push_bytes(ATTR_NAME, b"kernel_shape".to_vec());
        kernel.push_varint(ATTR_INTS, 1);
        kernel.push_varint(ATTR_INTS, 1);
        kernel.push_varint(ATTR_TYPE, ATTR_TYPE_INTS);
        node.msg.push_bytes(NODE_ATTRIBUTE, group.encode());
        node.msg.push_bytes(NODE_ATTRIBUTE, kernel.encode());
        node
    }

    /// An operator of the default ONNX domain called `op`.
    fn is(&self, op: &str) -> bool {
        let domain = self.msg.string(NODE_DOMAIN).unwrap_or_default();
        self.op == op && (domain.is_empty() || domain == "ai.onnx")
    }

    fn int_attribute(&self, name: &str) -> Result<Option<i64>> {
        for bytes in self.msg.bytes(NODE_ATTRIBUTE) {
            let attr = Message::decode(bytes)?;
            if attr.string(ATTR_NAME).as_deref() == Some(name) {
                return Ok(attr.varint(ATTR_I).map(|v| v as i64));
            }
        }
        Ok(None)
    }

    fn set_int_attribute(&mut self, name: &str, value: i64) -> Result<()> {
        let mut attrs = Vec::new();
        for bytes in self.msg.bytes(NODE_ATTRIBUTE) {
            let mut attr = Message::decode(bytes)?;
            if attr.string(ATTR_NAME).as_deref() == Some(name) {
                attr.set(ATTR_I, vec![Value::Varint(value as u64)]);
            }
            attrs.push(Value::Bytes(attr.encode()));
        }
        self.msg.set(NODE_ATTRIBUTE, attrs);
        Ok(())
    }

    fn group(&self) -> Result<i64> {
        Ok(self.int_attribute("group")?.unwrap_or(1))
    }
}

/// A float initializer, decoded.
struct Tensor {
    msg: Message,
    dims: Vec<i64>,
    values: Vec<f32>,
}

impl Tensor {
    fn decode(msg: Message) -> Result<Option<Tensor>> {
        if msg.varint(TENSOR_DATA_TYPE) != Some(FLOAT)
            || msg.varint(TENSOR_DATA_LOCATION) == Some(1)
        {
            return Ok(None);
        }
        let dims: Vec<i64> = msg
            .varints(TENSOR_DIMS)?
            .into_iter()
            .map(|d| d as i64)
            .collect();
        let values: Vec<f32> = if let Some(raw) = msg.bytes(TENSOR_RAW_DATA).next() {
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            let mut out = Vec::new();
            for field in msg.fields.iter().filter(|f| f.number == TENSOR_FLOAT_DATA) {
                match &field.value {
                    Value::Fixed32(b) => out.push(f32::from_le_bytes(*b)),
                    Value::Bytes(packed) => out.extend(
                        packed
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                    ),
                    _ => bail!("float_data of unexpected wire type"),
                }
            }
            out
        };
        let count: i64 = dims.iter().product();
        if dims.iter().any(|&d| d < 0) || count as usize != values.len() {
            bail!(
                "initializer {:?}: {} values for dims {dims:?}",
                msg.string(TENSOR_NAME).unwrap_or_default(),
                values.len()
            );
        }
        Ok(Some(Tensor { msg, dims, values }))
    }

    fn encode(mut self) -> Vec<u8> {
        let dims: Vec<u64> = self.dims.iter().map(|&d| d as u64).collect();
        self.msg
            .set(TENSOR_DIMS, vec![Message::packed_varints(&dims)]);
        self.msg.set(TENSOR_FLOAT_DATA, Vec::new());
        let raw: Vec<u8> = self.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.msg.set(TENSOR_RAW_DATA, vec![Value::Bytes(raw)]);
        self.msg.encode()
    }

    /// Adds `pad` zero slices along `axis`.
    fn pad_axis(&mut self, axis: usize, pad: usize) {
        let dims: Vec<usize> = self.dims.iter().map(|&d| d as usize).collect();
        let outer: usize = dims[..axis].iter().product();
        let inner: usize = dims[axis + 1..].iter().product();
        let mut out = Vec::with_capacity(self.values.len() + outer * pad * inner);
        for chunk in self.values.chunks(dims[axis] * inner) {
            out.extend_from_slice(chunk);
            out.extend(std::iter::repeat_n(0.0, pad * inner));
        }
        self.values = out;
        self.dims[axis] += pad as i64;
    }
}

struct Graph {
    msg: Message,
    nodes: Vec<Node>,
    /// Initializers by name, in file order.
    inits: Vec<(String, Message)>,
    value_info_dropped: bool,
}

impl Graph {
    fn decode(bytes: &[u8]) -> Result<Graph> {
        let msg = Message::decode(bytes).context("the model's graph")?;
        let nodes = msg
            .bytes(GRAPH_NODE)
            .map(Node::decode)
            .collect::<Result<Vec<_>>>()
            .context("a node of the graph")?;
        let inits = msg
            .bytes(GRAPH_INITIALIZER)
            .map(|b| {
                let m = Message::decode(b)?;
                Ok((m.string(TENSOR_NAME).unwrap_or_default(), m))
            })
            .collect::<Result<Vec<_>>>()
            .context("an initializer of the graph")?;
        Ok(Graph {
            msg,
            nodes,
            inits,
            value_info_dropped: false,
        })
    }

    fn encode(mut self) -> Vec<u8> {
        let nodes = self
            .nodes
            .iter()
            .map(|n| Value::Bytes(n.msg.encode()))
            .collect();
        self.msg.set(GRAPH_NODE, nodes);
        let inits = self
            .inits
            .iter()
            .map(|(_, m)| Value::Bytes(m.encode()))
            .collect();
        self.msg.set(GRAPH_INITIALIZER, inits);
        if self.value_info_dropped {
            // Shape hints for the padded tensors would now be wrong; they are
            // optional, and ONNX Runtime infers them again.
            self.msg.set(GRAPH_VALUE_INFO, Vec::new());
        }
        self.msg.encode()
    }

    fn init_index(&self, name: &str) -> Option<usize> {
        self.inits.iter().position(|(n, _)| n == name)
    }

    fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        match self.init_index(name) {
            Some(i) => Tensor::decode(self.inits[i].1.clone()),
            None => Ok(None),
        }
    }

    fn store(&mut self, name: &str, tensor: Tensor) -> Result<()> {
        let i = self
            .init_index(name)
            .with_context(|| format!("initializer {name:?} vanished"))?;
        self.inits[i].1 = Message::decode(&tensor.encode())?;
        Ok(())
    }

    /// How many times each tensor is read; a graph output counts as read
    /// twice, so it is never padded.
    fn uses(&self) -> HashMap<String, usize> {
        let mut uses = HashMap::new();
        for node in &self.nodes {
            for input in &node.inputs {
                *uses.entry(input.clone()).or_insert(0) += 1;
            }
        }
        for output in self.msg.bytes(GRAPH_OUTPUT) {
            if let Ok(info) = Message::decode(output) {
                if let Some(name) = info.string(VALUE_INFO_NAME) {
                    *uses.entry(name).or_insert(0) += 2;
                }
            }
        }
        uses
    }

    /// `PRelu(x) = x + (1 − s)·Relu(−x)`, with `−x` and the product by
    /// `1 − s` as 1×1 depthwise convolutions: every operator then has a
    /// blocked-layout kernel, so ONNX Runtime neither leaves the layout nor
    /// runs its slow broadcasting PRelu. Only for per-channel slopes
    /// (`[C,1,1]` or `[1,C,1,1]`), where the channel axis is certain.
    fn prelu_as_depthwise(&mut self) -> Result<usize> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut made: Vec<String> = Vec::new();
        let mut changed = 0;
        for node in std::mem::take(&mut self.nodes) {
            let slope = if node.is("PRelu") && node.inputs.len() == 2 && node.outputs.len() == 1 {
                self.tensor(&node.inputs[1])?
            } else {
                None
            };
            let Some(slope) = slope.filter(|t| {
                let c = t.values.len() as i64;
                c > 1 && (t.dims == [c, 1, 1] || t.dims == [1, c, 1, 1])
            }) else {
                out.push(node);
                continue;
            };
            let channels = slope.values.len();
            let (x, s, y) = (&node.inputs[0], &node.inputs[1], &node.outputs[0]);
            let (negate, keep) = (format!("{s}/negate"), format!("{s}/one_minus"));
            if !made.contains(s) {
                let shape = [channels as i64, 1, 1, 1];
                self.add_initializer(&negate, &shape, vec![-1.0; channels]);
                let one_minus = slope.values.iter().map(|v| 1.0 - v).collect();
                self.add_initializer(&keep, &shape, one_minus);
                made.push(s.clone());
            }
            let name = node.msg.string(NODE_NAME).unwrap_or_else(|| y.clone());
            let (negated, rectified, scaled) = (
                format!("{y}/negated"),
                format!("{y}/rectified"),
                format!("{y}/scaled"),
            );
            out.push(Node::depthwise_1x1(
                &format!("{name}/negate"),
                x,
                &negate,
                &negated,
                channels,
            ));
            out.push(Node::new(
                "Relu",
                &format!("{name}/relu"),
                &[&negated],
                &rectified,
            ));
            out.push(Node::depthwise_1x1(
                &format!("{name}/scale"),
                &rectified,
                &keep,
                &scaled,
                channels,
            ));
            out.push(Node::new("Add", &format!("{name}/add"), &[&scaled, x], y));
            changed += 1;
        }
        self.nodes = out;
        Ok(changed)
    }

    fn add_initializer(&mut self, name: &str, dims: &[i64], values: Vec<f32>) {
        let mut msg = Message::default();
        msg.push_varint(TENSOR_DATA_TYPE, FLOAT);
        msg.push_bytes(TENSOR_NAME, name.as_bytes().to_vec());
        let tensor = Tensor {
            msg,
            dims: dims.to_vec(),
            values,
        };
        let bytes = tensor.encode();
        if let Ok(msg) = Message::decode(&bytes) {
            self.inits.push((name.to_string(), msg));
        }
    }

    /// `PRelu(x) = Max(x, s·x)` where every slope is at most 1: two fast
    /// element-wise kernels instead of the broadcasting PRelu.
    fn prelu_as_max(&mut self) -> Result<usize> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut changed = 0;
        for node in std::mem::take(&mut self.nodes) {
            let slope_ok = node.is("PRelu")
                && node.inputs.len() == 2
                && node.outputs.len() == 1
                && self
                    .tensor(&node.inputs[1])?
                    .is_some_and(|t| t.values.iter().all(|&s| s <= 1.0));
            if !slope_ok {
                out.push(node);
                continue;
            }
            let (x, slope, y) = (&node.inputs[0], &node.inputs[1], &node.outputs[0]);
            let name = node.msg.string(NODE_NAME).unwrap_or_else(|| y.clone());
            let scaled = format!("{y}/prelu_scaled");
            out.push(Node::new(
                "Mul",
                &format!("{name}/mul"),
                &[x, slope],
                &scaled,
            ));
            out.push(Node::new("Max", &format!("{name}/max"), &[x, &scaled], y));
            changed += 1;
        }
        self.nodes = out;
        Ok(changed)
    }

    /// Finds every `conv (group 1) → [PRelu] → depthwise conv → [PRelu] →
    /// conv (group 1)` chain whose inner width is not a multiple of `block`
    /// and pads it with zero channels.
    fn pad_channels(&mut self, block: usize) -> Result<usize> {
        let mut padded = 0;
        for head in 0..self.nodes.len() {
            let uses = self.uses();
            if let Some(chain) = self.chain_from(head, block, &uses)? {
                self.pad_chain(&chain, block)?;
                padded += 1;
            }
        }
        if padded > 0 {
            self.value_info_dropped = true;
        }
        Ok(padded)
    }

    /// The nodes of a paddable chain starting at conv `head`, with its width.
    fn chain_from(
        &self,
        head: usize,
        block: usize,
        uses: &HashMap<String, usize>,
    ) -> Result<Option<(Vec<usize>, usize)>> {
        let node = &self.nodes[head];
        if !node.is("Conv") || node.group()? != 1 || node.outputs.len() != 1 {
            return Ok(None);
        }
        let Some(weight) = self.tensor(&node.inputs[1])? else {
            return Ok(None);
        };
        let width = weight.dims[0] as usize;
        if weight.dims.len() != 4 || width < 2 || width.is_multiple_of(block) {
            return Ok(None);
        }
        let used_once = |name: &str| uses.get(name).copied() == Some(1);
        let consumer_of = |tensor: &str| {
            self.nodes
                .iter()
                .position(|n| n.inputs.iter().any(|i| i == tensor))
        };
        let mut chain = vec![head];
        let mut tensor = node.outputs[0].clone();
        loop {
            if !used_once(&tensor) {
                return Ok(None);
            }
            let Some(next) = consumer_of(&tensor) else {
                return Ok(None);
            };
            let n = &self.nodes[next];
            if n.outputs.len() != 1 || n.inputs[0] != tensor {
                return Ok(None);
            }
            let weight = match n.inputs.get(1) {
                Some(w) => self.tensor(w)?,
                None => None,
            };
            let Some(weight) = weight else {
                return Ok(None);
            };
            chain.push(next);
            let per_channel_slope = n.is("PRelu") && weight.values.len() == width;
            let depthwise = n.is("Conv")
                && n.group()? == width as i64
                && weight.dims.len() == 4
                && weight.dims[0] as usize == width
                && weight.dims[1] == 1;
            if per_channel_slope || depthwise {
                tensor = n.outputs[0].clone();
            } else if n.is("Conv")
                && n.group()? == 1
                && weight.dims.len() == 4
                && weight.dims[1] as usize == width
            {
                break;
            } else {
                return Ok(None);
            }
        }
        // Every weight, bias and slope is the chain's own.
        for &i in &chain {
            for param in &self.nodes[i].inputs[1..] {
                if !used_once(param) || self.init_index(param).is_none() {
                    return Ok(None);
                }
            }
        }
        Ok(Some((chain, width)))
    }

    fn pad_chain(&mut self, (chain, width): &(Vec<usize>, usize), block: usize) -> Result<()> {
        let pad = width.div_ceil(block) * block - width;
        let last = chain.len() - 1;
        for (k, &i) in chain.iter().enumerate() {
            let inputs = self.nodes[i].inputs.clone();
            let op = self.nodes[i].op.clone();
            let context = || format!("padding node {i} ({op})");
            if k == last {
                // Zero input channels on the closing conv.
                let mut w = self.tensor(&inputs[1])?.with_context(context)?;
                w.pad_axis(1, pad);
                self.store(&inputs[1], w)?;
                continue;
            }
            if self.nodes[i].is("PRelu") {
                let mut s = self.tensor(&inputs[1])?.with_context(context)?;
                let axis = s
                    .dims
                    .iter()
                    .position(|&d| d as usize == *width)
                    .with_context(context)?;
                s.pad_axis(axis, pad);
                self.store(&inputs[1], s)?;
                continue;
            }
            // The opening conv or the depthwise conv: zero output channels.
            let mut w = self.tensor(&inputs[1])?.with_context(context)?;
            w.pad_axis(0, pad);
            self.store(&inputs[1], w)?;
            if let Some(bias) = inputs.get(2) {
                let mut b = self.tensor(bias)?.with_context(context)?;
                b.pad_axis(0, pad);
                self.store(bias, b)?;
            }
            if self.nodes[i].group()? == *width as i64 {
                self.nodes[i].set_int_attribute("group", (width + pad) as i64)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dims: &[i64], values: Vec<f32>) -> Vec<u8> {
        let mut msg = Message::default();
        msg.push_varint(TENSOR_DATA_TYPE, FLOAT);
        msg.push_bytes(TENSOR_NAME, name.as_bytes().to_vec());
        Tensor {
            msg,
            dims: dims.to_vec(),
            values,
        }
        .encode()
    }

    fn output(name: &str) -> Vec<u8> {
        let mut info = Message::default();
        info.push_bytes(VALUE_INFO_NAME, name.as_bytes().to_vec());
        info.encode()
    }

    /// A model of `nodes` and `inits` whose graph output is `out`.
    fn model(nodes: Vec<Node>, inits: Vec<Vec<u8>>, out: &str) -> Vec<u8> {
        let mut graph = Message::default();
        for n in nodes {
            graph.push_bytes(GRAPH_NODE, n.msg.encode());
        }
        for t in inits {
            graph.push_bytes(GRAPH_INITIALIZER, t);
        }
        graph.push_bytes(GRAPH_OUTPUT, output(out));
        let mut model = Message::default();
        model.push_varint(1, 8); // ir_version, kept as is
        model.push_bytes(MODEL_GRAPH, graph.encode());
        model.encode()
    }

    fn ops(bytes: &[u8]) -> Vec<String> {
        let model = Message::decode(bytes).unwrap();
        let graph = Graph::decode(model.bytes(MODEL_GRAPH).next().unwrap()).unwrap();
        graph.nodes.iter().map(|n| n.op.clone()).collect()
    }

    const MAX: Target = Target {
        blocked_layout: false,
    };
    const BLOCKED: Target = Target {
        blocked_layout: true,
    };

    #[test]
    fn prelu_becomes_max_only_when_every_slope_is_at_most_one() {
        let prelu = || Node::new("PRelu", "p", &["x", "s"], "y");
        let gentle = model(
            vec![prelu()],
            vec![tensor("s", &[2, 1, 1], vec![0.25, -0.1])],
            "y",
        );
        let (out, changes) = apply_for(&gentle, &[Rewrite::FastPrelu], MAX).unwrap();
        assert_eq!(changes.prelus, 1);
        assert_eq!(ops(&out), ["Mul", "Max"]);
        // max(x, 2x) is not PReLU with slope 2: left alone.
        let steep = model(
            vec![prelu()],
            vec![tensor("s", &[2, 1, 1], vec![0.25, 2.0])],
            "y",
        );
        let (out, changes) = apply_for(&steep, &[Rewrite::FastPrelu], MAX).unwrap();
        assert_eq!(changes.prelus, 0);
        assert_eq!(ops(&out), ["PRelu"]);
        assert_eq!(
            out, steep,
            "an untouched model is written back byte for byte"
        );
    }

    #[test]
    fn prelu_becomes_depthwise_convs_only_for_per_channel_slopes() {
        let prelu = || Node::new("PRelu", "p", &["x", "s"], "y");
        let per_channel = model(
            vec![prelu()],
            vec![tensor("s", &[2, 1, 1], vec![0.25, 3.0])],
            "y",
        );
        let (out, changes) = apply_for(&per_channel, &[Rewrite::FastPrelu], BLOCKED).unwrap();
        assert_eq!(changes.prelus, 1);
        assert_eq!(ops(&out), ["Conv", "Relu", "Conv", "Add"]);
        // A 1-D slope broadcasts along the last axis, not the channels.
        let last_axis = model(vec![prelu()], vec![tensor("s", &[2], vec![0.25, 0.5])], "y");
        let (_, changes) = apply_for(&last_axis, &[Rewrite::FastPrelu], BLOCKED).unwrap();
        assert_eq!(changes.prelus, 0);
    }

    #[test]
    fn pads_a_pruned_chain_but_never_one_whose_inner_tensor_is_read_elsewhere() {
        let conv =
            |name: &str, input: &str, w: &str, out: &str| Node::new("Conv", name, &[input, w], out);
        let inits = || {
            vec![
                tensor("w1", &[3, 4, 1, 1], vec![1.0; 12]),
                tensor("w2", &[4, 3, 1, 1], vec![1.0; 12]),
            ]
        };
        let chain = model(
            vec![conv("a", "x", "w1", "t"), conv("b", "t", "w2", "y")],
            inits(),
            "y",
        );
        let (out, changes) = apply_for(&chain, &[Rewrite::PadChannels], BLOCKED).unwrap();
        assert_eq!(changes.padded_chains, 1);
        let graph = Graph::decode(
            Message::decode(&out)
                .unwrap()
                .bytes(MODEL_GRAPH)
                .next()
                .unwrap(),
        )
        .unwrap();
        let w1 = graph.tensor("w1").unwrap().unwrap();
        assert_eq!(w1.dims, [CHANNEL_BLOCK as i64, 4, 1, 1]);
        assert_eq!(w1.values.iter().filter(|&&v| v != 0.0).count(), 12);
        let w2 = graph.tensor("w2").unwrap().unwrap();
        assert_eq!(w2.dims, [4, CHANNEL_BLOCK as i64, 1, 1]);
        // The inner tensor is also a graph output: padding would change it.
        let exposed = model(
            vec![conv("a", "x", "w1", "t"), conv("b", "t", "w2", "y")],
            inits(),
            "t",
        );
        let (_, changes) = apply_for(&exposed, &[Rewrite::PadChannels], BLOCKED).unwrap();
        assert_eq!(changes.padded_chains, 0);
        // Nothing is padded where ONNX Runtime has no blocked layout.
        let (_, changes) = apply_for(&chain, &[Rewrite::PadChannels], MAX).unwrap();
        assert_eq!(changes.padded_chains, 0);
    }

    #[test]
    fn refuses_what_is_not_an_onnx_model() {
        let err = apply_for(b"\xff\xff\xff", &[Rewrite::FastPrelu], MAX).unwrap_err();
        assert!(format!("{err:#}").contains("not an ONNX model"), "{err:#}");
        let err = apply_for(&[], &[Rewrite::FastPrelu], MAX).unwrap_err();
        assert!(format!("{err:#}").contains("no graph"), "{err:#}");
    }
}
