//! Data-parallel training across processes and machines: the reductions a training step needs
//! ([`Reduce`]), gradient summation in module order ([`sum_gradients`]), and their TCP
//! transport ([`Coordinator`], [`Peer`]).
//!
//! # Topology and protocol
//! One coordinator process (`electra coordinator`) and `world` ranks. Each rank connects to the
//! coordinator and says hello: protocol version, job id, world size, its rank and fingerprints
//! of its config, vocabulary and data. The coordinator waits for every rank, compares each
//! hello with rank 0's and refuses the job, naming the rank and the difference, when anything
//! differs (the job id is the config's hash, so ranks of another job are refused too), then
//! sends every rank the ring's addresses.
//!
//! The ranks form a ring: each listens on an address of its own (by default the interface it
//! reaches the coordinator from, on a free port) and connects to the next rank, which checks
//! the job id. Large reductions (the gradients, [`Reduce::sum_f32`]) travel rank to rank as a
//! pipelined chain in blocks of 1 MiB: rank 0 sends its block to rank 1, each rank adds its own
//! values to what it receives (so every sum is added in rank order, `((x0 + x1) + x2) + ...`)
//! and passes it on, the last rank holds the sum and sends it round the ring back to the
//! others. Blocks flow in both phases at once, so the reduction takes about one buffer's
//! transfer time, and nothing goes through the coordinator. Small reductions (losses and
//! counts, [`Reduce::sum_f64`]) go through the coordinator, which adds the ranks' buffers in
//! rank order and sends the sum back. Either way every rank receives bit-identical sums.
//!
//! # Faults
//! A rank that dies closes its connections; the coordinator's reader for it sees the end of
//! the stream at once and the coordinator sends every other rank an abort naming the lost rank,
//! so no rank waits forever. A rank whose ring neighbour closes reads that abort from the
//! coordinator to name the rank that was lost first (its neighbour may only have stopped
//! because of it). A rank whose coordinator dies sees its connection close. Reads
//! have a timeout ([`Peer::connect`]'s `timeout`) for the case where no end of stream ever
//! arrives (a machine that lost power). Nothing listens on all interfaces unless the
//! coordinator is given such an address.
//!
//! burn-collective 0.21 (the last release that has it) was considered: its second global
//! all-reduce hangs as published, it binds 0.0.0.0 without authentication, retries forever and
//! has no timeouts; this module is the few hundred lines that meet those requirements instead.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The reductions a data-parallel training step needs. [`Local`] is the single process.
pub trait Reduce: Sync {
    /// Number of ranks.
    fn world(&self) -> usize;
    /// This process's rank, `0..world`.
    fn rank(&self) -> usize;
    /// Replaces `values` by their element-wise sum over the ranks (added in rank order).
    ///
    /// # Errors
    /// A lost rank or coordinator, a timeout, or buffers of different lengths.
    fn sum_f32(&self, values: &mut [f32]) -> Result<()>;
    /// [`Reduce::sum_f32`] for `f64` values (counts and losses).
    ///
    /// # Errors
    /// As [`Reduce::sum_f32`].
    fn sum_f64(&self, values: &mut [f64]) -> Result<()>;

    /// This rank's rows of a global (micro-)batch of `rows` rows: a contiguous block, the blocks
    /// of ranks `0..world` in order covering `0..rows`.
    fn rows(&self, rows: usize) -> Range<usize> {
        split_rows(rows, self.rank(), self.world())
    }
}

/// Rank `rank`'s block of `rows` rows split over `world` ranks (sizes differ by at most one).
#[must_use]
pub fn split_rows(rows: usize, rank: usize, world: usize) -> Range<usize> {
    let world = world.max(1);
    rows * rank / world..rows * (rank + 1) / world
}

/// One process: every reduction is the identity.
#[derive(Debug, Default, Clone, Copy)]
pub struct Local;

impl Reduce for Local {
    fn world(&self) -> usize {
        1
    }
    fn rank(&self) -> usize {
        0
    }
    fn sum_f32(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn sum_f64(&self, _values: &mut [f64]) -> Result<()> {
        Ok(())
    }
}

/// Sums `grads` over the ranks: every float parameter of `model`, in the module's declaration
/// order (the same on every rank; burn's `ParamId`s are random per process, so they cannot
/// pair tensors up), is flattened into one buffer with a presence flag per parameter, the
/// buffer is summed once, and the sums are written back. A parameter without a gradient on any
/// rank stays without one, as in a single process.
///
/// # Errors
/// The reduction's.
pub fn sum_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &mut GradientsParams,
    dist: &dyn Reduce,
) -> Result<()> {
    let mut gather = Gather::<B> { grads, flat: Vec::new(), slots: Vec::new(), _b: std::marker::PhantomData };
    model.visit(&mut gather);
    let Gather { mut flat, slots, .. } = gather;
    let mut flags: Vec<f32> = slots.iter().map(|s| if s.present { 1.0 } else { 0.0 }).collect();
    flat.append(&mut flags);
    dist.sum_f32(&mut flat)?;
    let n = slots.len();
    let present: Vec<bool> = flat[flat.len() - n..].iter().map(|&f| f > 0.0).collect();
    let mut scatter = Scatter::<B> { grads, flat: &flat, slots: &slots, present: &present, next: 0, _b: std::marker::PhantomData };
    model.visit(&mut scatter);
    Ok(())
}

struct Slot {
    offset: usize,
    shape: Vec<usize>,
    present: bool,
}

struct Gather<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    flat: Vec<f32>,
    slots: Vec<Slot>,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Gather<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let shape = param.shape().dims::<D>().to_vec();
        let offset = self.flat.len();
        let len: usize = shape.iter().product();
        let present = match self.grads.remove::<B::InnerBackend, D>(param.id) {
            Some(g) => {
                let data = g.into_data();
                match data.as_slice::<f32>() {
                    Ok(values) => self.flat.extend_from_slice(values),
                    Err(_) => self.flat.extend(data.convert::<f32>().iter::<f32>()),
                }
                true
            }
            None => {
                self.flat.resize(offset + len, 0.0);
                false
            }
        };
        self.slots.push(Slot { offset, shape, present });
    }
}

struct Scatter<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    flat: &'a [f32],
    slots: &'a [Slot],
    present: &'a [bool],
    next: usize,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scatter<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let i = self.next;
        self.next += 1;
        let (Some(slot), Some(&present)) = (self.slots.get(i), self.present.get(i)) else { return };
        if !present {
            return;
        }
        let len: usize = slot.shape.iter().product();
        let values = self.flat[slot.offset..slot.offset + len].to_vec();
        let device = param.val().device();
        let tensor = Tensor::<B::InnerBackend, D>::from_data(TensorData::new(values, slot.shape.clone()), &device);
        self.grads.register::<B::InnerBackend, D>(param.id, tensor);
    }
}

// ---------------------------------------------------------------------------------------------
// Transport.

/// Protocol version; a rank with another is refused.
pub const PROTOCOL: u32 = 2;
/// Frame kinds.
const SUM_F32: u8 = 1;
const SUM_F64: u8 = 2;
const RESULT: u8 = 3;
const ABORT: u8 = 4;
const FINISH: u8 = 5;
/// Largest hello accepted (bytes).
const MAX_HELLO: u64 = 1 << 20;
/// Ring frame kinds: a partial sum (ranks `0..=r`), the final sum.
const PARTIAL: u8 = 1;
const FINAL: u8 = 2;
/// Bytes per ring block.
const BLOCK_BYTES: usize = 1 << 20;

/// A hello as it travels: the rank's [`Hello`] and the address of its ring listener.
#[derive(Debug, Serialize, Deserialize)]
struct Join {
    #[serde(flatten)]
    hello: Hello,
    #[serde(default)]
    ring: String,
}

/// What a rank says to the next rank on the ring.
#[derive(Debug, Serialize, Deserialize)]
struct RingHello {
    job: String,
    rank: usize,
}

/// What a rank says when it connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The job: ranks of one job share it (the config's hash).
    pub job: String,
    /// Number of ranks the rank was started with.
    pub world: usize,
    /// The rank.
    pub rank: usize,
    /// Named fingerprints (config, vocabulary, data) that must agree across ranks.
    pub fingerprints: BTreeMap<String, String>,
}

impl Hello {
    /// The first difference from `reference` (rank 0's hello), as a sentence.
    fn differs_from(&self, reference: &Hello) -> Option<String> {
        if self.protocol != reference.protocol {
            return Some(format!("protocol {} (rank 0: {})", self.protocol, reference.protocol));
        }
        if self.world != reference.world {
            return Some(format!("--world {} (rank 0: {})", self.world, reference.world));
        }
        for (name, value) in &reference.fingerprints {
            let mine = self.fingerprints.get(name).map_or("none", String::as_str);
            if mine != value {
                return Some(format!("its {name} differs from rank 0's ({mine} vs {value})"));
            }
        }
        if self.job != reference.job {
            return Some(format!("it belongs to another job ({} vs {})", self.job, reference.job));
        }
        None
    }
}

/// A short fingerprint of `bytes` (16 hex digits) for telling ranks' inputs apart; not a
/// cryptographic hash.
#[must_use]
pub fn digest(bytes: &[u8]) -> String {
    let mut h = crate::seed::derive_seed(0x5EED, bytes.len() as u64);
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = crate::seed::derive_seed(h, u64::from_le_bytes(word));
    }
    format!("{h:016x}")
}

/// The hello of rank `rank` of `world` for a run of `config` with the vocabulary `vocab_sha256`
/// over the prepared data `data`: the job is the config's digest, and the config, vocabulary
/// and data are its fingerprints.
#[must_use]
pub fn hello_for(
    config: &crate::PretrainConfig,
    vocab_sha256: &str,
    data: &electra_tokenizer::PrepareSettings,
    rank: usize,
    world: usize,
) -> Hello {
    let config_digest = digest(serde_json::to_string(config).unwrap_or_default().as_bytes());
    let data_digest = digest(serde_json::to_string(data).unwrap_or_default().as_bytes());
    let fingerprints = [
        ("config".to_string(), config_digest.clone()),
        ("vocabulary".to_string(), vocab_sha256.to_string()),
        ("data manifest".to_string(), data_digest),
    ]
    .into_iter()
    .collect();
    Hello { protocol: PROTOCOL, job: config_digest, world, rank, fingerprints }
}

fn collective(message: impl Into<String>) -> Error {
    Error::Collective(message.into())
}

fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&[kind])?;
    w.write_all(&(payload.len() as u64).to_le_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

fn read_frame(r: &mut impl Read, max: u64) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head)?;
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&head[1..]);
    let len = u64::from_le_bytes(len_bytes);
    if len > max {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    Ok((head[0], payload))
}

/// Values whose little-endian bytes travel as they lie in memory (`f32`, `f64`).
trait Wire: bytemuck::Pod + Send + Sync {
    const KIND: u8;
    fn from_le(bytes: &[u8]) -> Self;
    fn to_le(self) -> Vec<u8>;
}

impl Wire for f32 {
    const KIND: u8 = SUM_F32;
    fn from_le(b: &[u8]) -> Self {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    fn to_le(self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
}

impl Wire for f64 {
    const KIND: u8 = SUM_F64;
    fn from_le(b: &[u8]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        f64::from_le_bytes(a)
    }
    fn to_le(self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
}

/// The little-endian bytes of `values`: the values' own memory on little-endian machines (no
/// copy of a gradient buffer), converted elsewhere.
fn le_bytes<T: Wire>(values: &[T]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(bytemuck::cast_slice(values))
    } else {
        std::borrow::Cow::Owned(values.iter().flat_map(|v| v.to_le()).collect())
    }
}

/// Values from little-endian bytes (a copy when `bytes` is not aligned for `T`).
fn from_le_bytes<T: Wire>(bytes: &[u8]) -> Vec<T> {
    let size = std::mem::size_of::<T>();
    if cfg!(target_endian = "little")
        && let Ok(v) = bytemuck::try_cast_slice::<u8, T>(bytes)
    {
        return v.to_vec();
    }
    bytes.chunks_exact(size).map(T::from_le).collect()
}

/// A rank's connections: to the coordinator, and to its neighbours on the ring.
pub struct Peer {
    rank: usize,
    world: usize,
    coordinator: SocketAddr,
    stream: Mutex<(BufReader<TcpStream>, BufWriter<TcpStream>)>,
    ring: Option<Mutex<Ring>>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("rank", &self.rank).field("world", &self.world).finish_non_exhaustive()
    }
}

impl Peer {
    /// Connects to the coordinator at `address` (retrying for up to `connect_wait`, since it
    /// may start after the ranks), says `hello`, waits until every rank has joined and joins
    /// the ring, listening on the interface that reaches the coordinator (any free port).
    /// `timeout` bounds every later wait for an answer.
    ///
    /// # Errors
    /// [`Error::Collective`]: no coordinator in time, the job was refused (naming why), or a
    /// ring neighbour could not be reached.
    pub fn connect(address: &str, hello: &Hello, connect_wait: Duration, timeout: Duration) -> Result<Self> {
        Self::connect_listening(address, None, hello, connect_wait, timeout)
    }

    /// [`Peer::connect`], with the ring listener on `listen` (`HOST:PORT`; port 0 for any free
    /// one) when given. An unspecified host (`0.0.0.0`) listens on every interface and
    /// advertises the one that reaches the coordinator.
    ///
    /// # Errors
    /// As [`Peer::connect`], and an address that cannot be bound.
    pub fn connect_listening(
        address: &str,
        listen: Option<&str>,
        hello: &Hello,
        connect_wait: Duration,
        timeout: Duration,
    ) -> Result<Self> {
        let addrs: Vec<SocketAddr> = address
            .to_socket_addrs()
            .map_err(|e| collective(format!("coordinator address {address}: {e}")))?
            .collect();
        let deadline = Instant::now() + connect_wait;
        let stream = loop {
            let attempt = addrs.iter().find_map(|a| TcpStream::connect_timeout(a, Duration::from_secs(5)).ok());
            if let Some(s) = attempt {
                break s;
            }
            if Instant::now() > deadline {
                return Err(collective(format!(
                    "no coordinator at {address} after {} s (start it with `electra coordinator`)",
                    connect_wait.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let coordinator = stream.peer_addr().map_err(|e| collective(format!("{address}: {e}")))?;
        let local_ip = stream.local_addr().map_err(|e| collective(format!("{address}: {e}")))?.ip();
        let listener = if hello.world > 1 { Some(ring_listener(listen, local_ip)?) } else { None };
        let advertised = match &listener {
            Some((_, at)) => at.to_string(),
            None => String::new(),
        };
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(timeout)).map_err(|e| collective(format!("{address}: {e}")))?;
        let reader = stream.try_clone().map_err(|e| collective(format!("{address}: {e}")))?;
        let mut peer = Self {
            rank: hello.rank,
            world: hello.world,
            coordinator,
            stream: Mutex::new((BufReader::with_capacity(1 << 20, reader), BufWriter::with_capacity(1 << 20, stream))),
            ring: None,
        };
        let join = Join { hello: hello.clone(), ring: advertised };
        let text = serde_json::to_vec(&join).map_err(|e| collective(e.to_string()))?;
        let answer = peer.exchange(0, &text, &mut [])?;
        if let Some((listener, _)) = listener {
            let ring: Vec<String> = serde_json::from_slice(&answer)
                .map_err(|e| collective(format!("the coordinator's list of ring addresses: {e}")))?;
            let joined = Ring::join(&listener, &ring, hello, Instant::now() + connect_wait.max(Duration::from_secs(30)));
            let joined = joined.map_err(|e| peer.explain(e))?;
            joined.set_timeout(timeout);
            peer.ring = Some(Mutex::new(joined));
        }
        tracing::info!(rank = peer.rank, world = peer.world, %coordinator, "joined the job");
        Ok(peer)
    }

    /// Why a ring operation failed: the coordinator's abort when it sent one (it names the
    /// rank that was lost first), else `error` itself.
    fn explain(&self, error: Error) -> Error {
        let Ok(mut guard) = self.stream.lock() else { return error };
        let (reader, _) = &mut *guard;
        let _ = reader.get_ref().set_read_timeout(Some(Duration::from_secs(10)));
        match read_frame(reader, MAX_HELLO) {
            Ok((ABORT, body)) => collective(String::from_utf8_lossy(&body).into_owned()),
            _ => error,
        }
    }

    /// Sends one frame and waits for the coordinator's answer (a result, or an abort); the
    /// result's payload is written into `answer` when it has `answer`'s length, and returned
    /// otherwise.
    fn exchange(&self, kind: u8, payload: &[u8], answer: &mut [u8]) -> Result<Vec<u8>> {
        let coordinator = self.coordinator;
        let lost = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                collective(format!("no answer from the coordinator at {coordinator} within the timeout"))
            }
            _ => collective(format!("lost the coordinator at {coordinator}: {e}")),
        };
        let mut guard = self.stream.lock().map_err(|_| collective("connection poisoned"))?;
        let (reader, writer) = &mut *guard;
        if let Err(e) = write_frame(writer, kind, payload) {
            // The coordinator may have closed after telling this rank why (a lost rank): read
            // that first.
            return match read_frame(reader, u64::MAX) {
                Ok((ABORT, body)) => Err(collective(String::from_utf8_lossy(&body).into_owned())),
                _ => Err(lost(e)),
            };
        }
        let mut head = [0u8; 9];
        reader.read_exact(&mut head).map_err(lost)?;
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&head[1..]);
        let len = u64::from_le_bytes(len_bytes) as usize;
        if head[0] == RESULT && len == answer.len() && len > 0 {
            reader.read_exact(answer).map_err(lost)?;
            return Ok(Vec::new());
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).map_err(lost)?;
        match head[0] {
            RESULT => Ok(body),
            ABORT => Err(collective(String::from_utf8_lossy(&body).into_owned())),
            other => Err(collective(format!("unexpected frame {other} from the coordinator"))),
        }
    }

    /// Sums `values` over the ranks in place along the ring.
    fn ring_sum<T: Wire + std::ops::AddAssign>(&self, values: &mut [T]) -> Result<()> {
        let Some(ring) = &self.ring else { return Ok(()) };
        let result = {
            let mut ring = ring.lock().map_err(|_| collective("ring poisoned"))?;
            ring.sum(values)
        };
        result.map_err(|e| self.explain(e))
    }

    /// Sums `values` over the ranks in place through the coordinator.
    fn sum<T: Wire>(&self, values: &mut [T]) -> Result<()> {
        if cfg!(target_endian = "little") {
            let payload = bytemuck::cast_slice::<T, u8>(values).to_vec();
            let rest = self.exchange(T::KIND, &payload, bytemuck::cast_slice_mut(values))?;
            if !rest.is_empty() {
                return Err(collective(format!("a sum of {} bytes for {} values", rest.len(), values.len())));
            }
            return Ok(());
        }
        let body = self.exchange(T::KIND, &le_bytes(values), &mut [])?;
        if body.len() != std::mem::size_of_val(values) {
            return Err(collective(format!("a sum of {} bytes for {} values", body.len(), values.len())));
        }
        values.copy_from_slice(&from_le_bytes::<T>(&body));
        Ok(())
    }

    /// Tells the coordinator this rank is done (it exits once every rank is).
    ///
    /// # Errors
    /// The connection.
    pub fn finish(&self) -> Result<()> {
        self.exchange(FINISH, &[], &mut []).map(|_| ())
    }
}

impl Reduce for Peer {
    fn world(&self) -> usize {
        self.world
    }
    fn rank(&self) -> usize {
        self.rank
    }
    fn sum_f32(&self, values: &mut [f32]) -> Result<()> {
        self.ring_sum(values)
    }
    fn sum_f64(&self, values: &mut [f64]) -> Result<()> {
        self.sum(values)
    }
}

/// Binds the ring listener on `listen`, or on `local_ip` (the interface that reaches the
/// coordinator) with any free port; returns it with the address to advertise.
fn ring_listener(listen: Option<&str>, local_ip: IpAddr) -> Result<(TcpListener, SocketAddr)> {
    let listener = match listen {
        Some(at) => TcpListener::bind(at).map_err(|e| collective(format!("cannot listen on {at} for the ring: {e}")))?,
        None => TcpListener::bind(SocketAddr::new(local_ip, 0))
            .map_err(|e| collective(format!("cannot listen on {local_ip} for the ring: {e}")))?,
    };
    let mut at = listener.local_addr().map_err(|e| collective(e.to_string()))?;
    if at.ip().is_unspecified() {
        at.set_ip(local_ip);
    }
    Ok((listener, at))
}

/// A rank's two ring connections: from the previous rank, to the next.
struct Ring {
    rank: usize,
    world: usize,
    prev: TcpStream,
    next: TcpStream,
}

impl Ring {
    /// Connects to the next rank (at `addresses[rank + 1]`) and accepts the previous one on
    /// `listener`, refusing connections that do not come from this job's previous rank.
    fn join(listener: &TcpListener, addresses: &[String], hello: &Hello, deadline: Instant) -> Result<Self> {
        let (rank, world) = (hello.rank, hello.world);
        if addresses.len() != world {
            return Err(collective(format!("the coordinator sent {} ring addresses for {world} ranks", addresses.len())));
        }
        let (prev_rank, next_rank) = ((rank + world - 1) % world, (rank + 1) % world);
        let next_at = &addresses[next_rank];
        let greeting = serde_json::to_vec(&RingHello { job: hello.job.clone(), rank }).map_err(|e| collective(e.to_string()))?;
        std::thread::scope(|scope| {
            let connecting = scope.spawn(|| -> Result<TcpStream> {
                loop {
                    let stream = next_at
                        .to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.find_map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok()));
                    if let Some(mut s) = stream {
                        s.set_nodelay(true).ok();
                        write_frame(&mut s, 0, &greeting)
                            .map_err(|e| collective(format!("rank {next_rank} at {next_at}: {e}")))?;
                        return Ok(s);
                    }
                    if Instant::now() > deadline {
                        return Err(collective(format!("cannot reach rank {next_rank} at {next_at} (its ring address)")));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            listener.set_nonblocking(true).map_err(|e| collective(e.to_string()))?;
            let prev = loop {
                match listener.accept() {
                    Ok((s, from)) => {
                        s.set_nonblocking(false).ok();
                        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                        let mut s = s;
                        let said = read_frame(&mut s, MAX_HELLO).ok().and_then(|(_, b)| serde_json::from_slice::<RingHello>(&b).ok());
                        match said {
                            Some(h) if h.job == hello.job && h.rank == prev_rank => break s,
                            _ => tracing::warn!(%from, "refused a ring connection that is not this job's rank {prev_rank}"),
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err(collective(format!("rank {prev_rank} did not connect to this rank's ring address")));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => return Err(collective(format!("ring accept: {e}"))),
                }
            };
            prev.set_nodelay(true).ok();
            let next = connecting.join().map_err(|_| collective("ring connection thread panicked"))??;
            Ok(Self { rank, world, prev, next })
        })
    }

    fn set_timeout(&self, timeout: Duration) {
        let _ = self.prev.set_read_timeout(Some(timeout));
        let _ = self.next.set_write_timeout(Some(timeout));
    }

    /// The pipelined chain reduction described in the module docs.
    fn sum<T: Wire + std::ops::AddAssign>(&mut self, values: &mut [T]) -> Result<()> {
        let (rank, world) = (self.rank, self.world);
        let (prev_rank, next_rank) = ((rank + world - 1) % world, (rank + 1) % world);
        let per_block = (BLOCK_BYTES / std::mem::size_of::<T>()).max(1);
        let blocks = values.len().div_ceil(per_block);
        let last = world - 1;
        // Frames this rank reads: rank 0 the finals, the last rank the partials, the others both.
        let (mut partials_due, mut finals_due) = match rank {
            0 => (0, blocks),
            r if r == last => (blocks, 0),
            _ => (blocks, blocks),
        };
        let forwards_finals = rank + 2 != world && rank != last;
        let (prev, next) = (&self.prev, &self.next);
        let lost_prev = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                collective(format!("no data from rank {prev_rank} within the timeout"))
            }
            _ => collective(format!("lost rank {prev_rank} ({e})")),
        };
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = mpsc::channel::<Outgoing<'_, T>>();
            let (back_tx, back_rx) = mpsc::channel::<&mut [T]>();
            let writer = scope.spawn(move || -> std::io::Result<()> {
                let mut w = next;
                let result = (|| {
                    for out in rx {
                        match out {
                            Outgoing::Own(index, block) => {
                                send_block(&mut w, PARTIAL, index, block)?;
                                let _ = back_tx.send(block);
                            }
                            Outgoing::Owned(kind, index, mut block) => send_block(&mut w, kind, index, &mut block)?,
                        }
                    }
                    Ok(())
                })();
                if result.is_err() {
                    // Wake the reader: the ring is broken.
                    let _ = prev.shutdown(Shutdown::Read);
                }
                result
            });
            let mut own: Vec<Option<&mut [T]>> = Vec::with_capacity(blocks);
            if rank == 0 {
                for (i, block) in values.chunks_mut(per_block).enumerate() {
                    let _ = tx.send(Outgoing::Own(i as u32, block));
                    own.push(None);
                }
            } else {
                own.extend(values.chunks_mut(per_block).map(Some));
            }
            let read_all = (|| -> Result<()> {
                let (mut next_partial, mut next_final, mut reclaimed) = (0usize, 0usize, 0usize);
                let mut r = prev;
                while partials_due + finals_due > 0 {
                    let mut head = [0u8; 9];
                    r.read_exact(&mut head).map_err(lost_prev)?;
                    let kind = head[0];
                    let index = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
                    let len = u32::from_le_bytes([head[5], head[6], head[7], head[8]]) as usize;
                    let expected = match kind {
                        PARTIAL if partials_due > 0 => next_partial,
                        FINAL if finals_due > 0 => next_final,
                        _ => return Err(collective(format!("unexpected ring frame {kind} from rank {prev_rank}"))),
                    };
                    if rank == 0 {
                        reclaim(expected, &back_rx, &mut own, &mut reclaimed)?;
                    }
                    let size = own.get(expected).and_then(|b| b.as_ref()).map(|b| b.len());
                    if index != expected || Some(len) != size {
                        return Err(collective("ranks reduced buffers of different lengths"));
                    }
                    if kind == PARTIAL {
                        next_partial += 1;
                        partials_due -= 1;
                        let mut acc = vec![T::zeroed(); len];
                        r.read_exact(bytemuck::cast_slice_mut(&mut acc)).map_err(lost_prev)?;
                        from_wire(&mut acc);
                        let mine = own[index].as_mut().ok_or_else(|| collective("ring block used twice"))?;
                        acc.iter_mut().zip(mine.iter()).for_each(|(a, &b)| *a += b);
                        if rank == last {
                            mine.copy_from_slice(&acc);
                            let _ = tx.send(Outgoing::Owned(FINAL, index as u32, acc));
                        } else {
                            let _ = tx.send(Outgoing::Owned(PARTIAL, index as u32, acc));
                        }
                    } else {
                        next_final += 1;
                        finals_due -= 1;
                        let mine = own[index].as_mut().ok_or_else(|| collective("ring block used twice"))?;
                        r.read_exact(bytemuck::cast_slice_mut(mine)).map_err(lost_prev)?;
                        from_wire(mine);
                        if forwards_finals {
                            let _ = tx.send(Outgoing::Owned(FINAL, index as u32, mine.to_vec()));
                        }
                    }
                }
                Ok(())
            })();
            if read_all.is_err() {
                // Unblock the writer (it may wait on a full socket): the reduction has failed.
                let _ = next.shutdown(Shutdown::Both);
            }
            drop(tx);
            let written = writer.join().map_err(|_| collective("ring writer panicked"))?;
            read_all?;
            written.map_err(|e| collective(format!("lost rank {next_rank} ({e})")))
        })
    }
}

/// For rank 0: waits until the writer has sent block `index` of its own values and has handed
/// it back (its final sum arrives only after its partial left; blocks come back in order).
fn reclaim<'a, T>(
    index: usize,
    back: &mpsc::Receiver<&'a mut [T]>,
    own: &mut [Option<&'a mut [T]>],
    reclaimed: &mut usize,
) -> Result<()> {
    if index >= own.len() {
        return Err(collective("ranks reduced buffers of different lengths"));
    }
    while *reclaimed <= index {
        own[*reclaimed] = Some(back.recv().map_err(|_| collective("the ring writer stopped"))?);
        *reclaimed += 1;
    }
    Ok(())
}

/// A block queued for the next rank: one of rank 0's own blocks (lent to the writer and
/// handed back once sent), or a computed one.
enum Outgoing<'a, T> {
    Own(u32, &'a mut [T]),
    Owned(u8, u32, Vec<T>),
}

/// Writes one ring frame: kind, block index, length in values, then the values little-endian.
fn send_block<T: Wire>(w: &mut impl Write, kind: u8, index: u32, block: &mut [T]) -> std::io::Result<()> {
    let mut head = [0u8; 9];
    head[0] = kind;
    head[1..5].copy_from_slice(&index.to_le_bytes());
    head[5..9].copy_from_slice(&(block.len() as u32).to_le_bytes());
    w.write_all(&head)?;
    from_wire(block);
    let written = w.write_all(bytemuck::cast_slice(block));
    from_wire(block);
    written
}

/// Converts values between this machine's byte order and little-endian, in place (nothing to
/// do on little-endian machines; a byte swap, its own inverse, elsewhere).
fn from_wire<T: Wire>(values: &mut [T]) {
    if cfg!(target_endian = "big") {
        let size = std::mem::size_of::<T>();
        bytemuck::cast_slice_mut::<T, u8>(values).chunks_exact_mut(size).for_each(<[u8]>::reverse);
    }
}

/// The coordinator of one job: accepts `world` ranks, checks them against rank 0, and serves
/// their reductions until every rank has finished.
#[derive(Debug)]
pub struct Coordinator {
    listener: TcpListener,
    world: usize,
}

impl Coordinator {
    /// Listens on `address` (e.g. `127.0.0.1:29500`; `0.0.0.0:PORT` only when asked for).
    ///
    /// # Errors
    /// [`Error::Collective`] naming the address when it cannot be bound (a port in use, say).
    pub fn bind(address: &str, world: usize) -> Result<Self> {
        if world == 0 {
            return Err(collective("--world must be at least 1"));
        }
        let listener = TcpListener::bind(address).map_err(|e| collective(format!("cannot listen on {address}: {e}")))?;
        Ok(Self { listener, world })
    }

    /// The address it listens on (with the port the OS chose for port 0).
    ///
    /// # Errors
    /// The socket's.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| collective(e.to_string()))
    }

    /// Serves the job to its end. Returns when every rank has finished.
    ///
    /// # Errors
    /// A refused rank (the message names it and the difference; every rank is told), a lost
    /// rank (every other rank is told which), or a protocol error.
    pub fn serve(self, join_wait: Duration) -> Result<()> {
        let (tx, rx) = mpsc::channel::<FrameFrom>();
        let mut writers: Vec<Option<BufWriter<TcpStream>>> = (0..self.world).map(|_| None).collect();
        let mut hellos: Vec<Option<Hello>> = vec![None; self.world];
        let mut rings: Vec<String> = vec![String::new(); self.world];
        self.listener.set_nonblocking(true).map_err(|e| collective(e.to_string()))?;
        let deadline = Instant::now() + join_wait;
        let mut pending: Vec<(usize, TcpStream)> = Vec::new();
        // Join: accept connections and read each hello.
        while hellos.iter().any(Option::is_none) {
            match self.listener.accept() {
                Ok((stream, from)) => {
                    stream.set_nonblocking(false).ok();
                    stream.set_nodelay(true).ok();
                    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
                    let mut s = stream;
                    let join = read_frame(&mut s, MAX_HELLO)
                        .ok()
                        .and_then(|(_, body)| serde_json::from_slice::<Join>(&body).ok());
                    let Some(Join { hello, ring }) = join else {
                        tracing::warn!(%from, "ignored a connection that did not say hello");
                        continue;
                    };
                    if hello.rank >= self.world || hello.world != self.world {
                        let msg = format!(
                            "refused rank {} of world {}: this coordinator serves a world of {}",
                            hello.rank, hello.world, self.world
                        );
                        let _ = write_frame(&mut s, ABORT, msg.as_bytes());
                        tracing::warn!("{msg}");
                        continue;
                    }
                    if hellos[hello.rank].is_some() {
                        let msg = format!("refused a second rank {} (from {from})", hello.rank);
                        let _ = write_frame(&mut s, ABORT, msg.as_bytes());
                        tracing::warn!("{msg}");
                        continue;
                    }
                    tracing::info!(rank = hello.rank, %from, "rank joined");
                    let rank = hello.rank;
                    hellos[rank] = Some(hello);
                    rings[rank] = ring;
                    s.set_read_timeout(None).ok();
                    pending.push((rank, s.try_clone().map_err(|e| collective(e.to_string()))?));
                    writers[rank] = Some(BufWriter::with_capacity(1 << 20, s));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        let missing: Vec<String> =
                            (0..self.world).filter(|&r| hellos[r].is_none()).map(|r| r.to_string()).collect();
                        let msg = format!("ranks {} did not join within {} s", missing.join(", "), join_wait.as_secs());
                        broadcast(&mut writers, ABORT, msg.as_bytes());
                        return Err(collective(msg));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(collective(format!("accept: {e}"))),
            }
        }
        // Check every rank against rank 0.
        let hellos: Vec<Hello> = hellos.into_iter().flatten().collect();
        for h in &hellos[1..] {
            if let Some(diff) = h.differs_from(&hellos[0]) {
                let msg = format!("rank {} refused: {diff}", h.rank);
                broadcast(&mut writers, ABORT, msg.as_bytes());
                return Err(collective(msg));
            }
        }
        let addresses = serde_json::to_vec(&rings).map_err(|e| collective(e.to_string()))?;
        broadcast(&mut writers, RESULT, &addresses);
        tracing::info!(world = self.world, "every rank joined; serving");
        // One reader thread per rank, so that a lost rank is noticed at once.
        for (rank, stream) in pending {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::with_capacity(1 << 20, stream);
                loop {
                    let frame = read_frame(&mut r, u64::MAX);
                    let end = frame.is_err() || frame.as_ref().is_ok_and(|(k, _)| *k == FINISH);
                    if tx.send((rank, frame)).is_err() || end {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut finished = vec![false; self.world];
        let mut round: Vec<Option<(u8, Vec<u8>)>> = vec![None; self.world];
        while finished.iter().any(|f| !f) {
            let Ok((rank, frame)) = rx.recv() else {
                return Err(collective("every connection closed before the job finished"));
            };
            match frame {
                Ok((FINISH, _)) => {
                    finished[rank] = true;
                    if let Some(w) = writers[rank].as_mut() {
                        let _ = write_frame(w, RESULT, &[]);
                    }
                }
                Ok((kind @ (SUM_F32 | SUM_F64), body)) => {
                    round[rank] = Some((kind, body));
                    if round.iter().all(Option::is_some) {
                        let parts: Vec<(u8, Vec<u8>)> = round.iter_mut().filter_map(Option::take).collect();
                        let sum = add_in_rank_order(&parts)?;
                        broadcast(&mut writers, RESULT, &sum);
                    }
                }
                Ok((kind, _)) => {
                    let msg = format!("rank {rank} sent an unknown frame {kind}");
                    abort_all(&mut writers, &msg, &rx, &finished);
                    return Err(collective(msg));
                }
                Err(e) => {
                    let msg = format!("lost rank {rank} ({e}); stopping every rank");
                    writers[rank] = None;
                    finished[rank] = true;
                    abort_all(&mut writers, &msg, &rx, &finished);
                    return Err(collective(msg));
                }
            }
        }
        tracing::info!("every rank finished");
        Ok(())
    }
}

/// Tells every rank still connected why the job stops, closes the sending side, and waits (a
/// few seconds at most) for those ranks to close theirs, so that the abort is delivered rather
/// than reset by a close with unread data.
fn abort_all(
    writers: &mut [Option<BufWriter<TcpStream>>],
    message: &str,
    rx: &mpsc::Receiver<FrameFrom>,
    finished: &[bool],
) {
    broadcast(writers, ABORT, message.as_bytes());
    for w in writers.iter_mut().flatten() {
        let _ = w.get_ref().shutdown(std::net::Shutdown::Write);
    }
    let mut open: Vec<bool> = finished.iter().map(|f| !f).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while open.iter().any(|&o| o) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((rank, Err(_))) => open[rank] = false,
            Ok((rank, Ok((FINISH, _)))) => open[rank] = false,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// A frame (kind, payload) read from a rank, or why the rank's stream ended.
type FrameFrom = (usize, std::io::Result<(u8, Vec<u8>)>);

/// Sends one frame to every connected rank (large payloads to all ranks at once). A failed
/// write is left to that rank's reader, which sees the connection end.
fn broadcast(writers: &mut [Option<BufWriter<TcpStream>>], kind: u8, payload: &[u8]) {
    if payload.len() < 1 << 20 {
        for w in writers.iter_mut().flatten() {
            let _ = write_frame(w, kind, payload);
        }
        return;
    }
    std::thread::scope(|scope| {
        for w in writers.iter_mut().flatten() {
            scope.spawn(move || {
                let _ = write_frame(w, kind, payload);
            });
        }
    });
}

/// The element-wise sum of one buffer per rank, added in rank order.
fn add_in_rank_order(parts: &[(u8, Vec<u8>)]) -> Result<Vec<u8>> {
    let (kind, first) = &parts[0];
    if parts.iter().any(|(k, b)| k != kind || b.len() != first.len()) {
        return Err(collective("ranks reduced buffers of different kinds or lengths"));
    }
    fn add<T: Wire + std::ops::AddAssign>(parts: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut acc: Vec<T> = from_le_bytes(&parts[0].1);
        for (_, body) in &parts[1..] {
            if cfg!(target_endian = "little")
                && let Ok(values) = bytemuck::try_cast_slice::<u8, T>(body)
            {
                acc.iter_mut().zip(values).for_each(|(a, &b)| *a += b);
            } else {
                acc.iter_mut().zip(body.chunks_exact(std::mem::size_of::<T>())).for_each(|(a, b)| *a += T::from_le(b));
            }
        }
        le_bytes(&acc).into_owned()
    }
    Ok(if *kind == SUM_F32 { add::<f32>(parts) } else { add::<f64>(parts) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(rank: usize, world: usize, config: &str) -> Hello {
        let fingerprints = [("config".to_string(), config.to_string())].into_iter().collect();
        Hello { protocol: PROTOCOL, job: config.to_string(), world, rank, fingerprints }
    }

    fn start(world: usize) -> (String, std::thread::JoinHandle<Result<()>>) {
        let c = Coordinator::bind("127.0.0.1:0", world).unwrap_or_else(|e| panic!("{e}"));
        let addr = c.local_addr().unwrap_or_else(|e| panic!("{e}")).to_string();
        (addr, std::thread::spawn(move || c.serve(Duration::from_secs(20))))
    }

    /// Ranks `ranks` of a job of `world` at `addr` (job "a"), one thread each: each connects,
    /// then runs `f` with its rank and connection.
    fn spawn_ranks<T: Send + 'static>(
        addr: &str,
        world: usize,
        ranks: std::ops::Range<usize>,
        f: impl Fn(usize, Peer) -> Result<T> + Send + Clone + 'static,
    ) -> Vec<std::thread::JoinHandle<Result<T>>> {
        ranks
            .map(|r| {
                let (addr, f) = (addr.to_string(), f.clone());
                std::thread::spawn(move || {
                    f(r, Peer::connect(&addr, &hello(r, world, "a"), Duration::from_secs(10), Duration::from_secs(30))?)
                })
            })
            .collect()
    }

    #[test]
    fn many_consecutive_reductions_sum_in_rank_order_on_every_rank() {
        let world = 3;
        let (addr, server) = start(world);
        let ranks = spawn_ranks(&addr, world, 0..world, |r, p| {
            let mut last = Vec::new();
            for step in 0..200 {
                let mut v = vec![r as f32 + step as f32, 0.1 * (r + 1) as f32, 1e-8];
                p.sum_f32(&mut v)?;
                let mut c = [1.0f64, r as f64];
                p.sum_f64(&mut c)?;
                assert_eq!(c, [3.0, 3.0]);
                last = v;
            }
            p.finish()?;
            Ok(last)
        });
        let results: Vec<Vec<f32>> = ranks.into_iter().map(|h| h.join().unwrap_or_else(|_| panic!("rank panicked")).unwrap_or_else(|e| panic!("{e}"))).collect();
        server.join().unwrap_or_else(|_| panic!("coordinator panicked")).unwrap_or_else(|e| panic!("{e}"));
        let expected = vec![0.0 + 1.0 + 2.0 + 3.0 * 199.0, (0.1f32 + 0.2f32) + 0.3f32, 3e-8];
        for r in &results {
            assert_eq!(r[0], expected[0]);
            assert_eq!(r[1].to_bits(), expected[1].to_bits(), "not added in rank order");
            assert_eq!(r, &results[0], "ranks disagree");
        }
    }

    #[test]
    fn buffers_of_many_ring_blocks_sum_in_rank_order_for_2_and_4_ranks() {
        // 2.5 ring blocks; values whose sum depends on the order of addition.
        let len = BLOCK_BYTES / 4 * 5 / 2;
        let value = |r: usize, i: usize| ((r * 7 + i * 13) % 1000) as f32 * 0.1 + if r == 0 { 1e7 } else { 0.0 };
        for world in [2usize, 4] {
            let (addr, server) = start(world);
            let ranks = spawn_ranks(&addr, world, 0..world, move |r, p| {
                let mut v = Vec::new();
                for _ in 0..3 {
                    v = (0..len).map(|i| value(r, i)).collect();
                    p.sum_f32(&mut v)?;
                }
                p.finish()?;
                Ok(v)
            });
            let results: Vec<Vec<f32>> =
                ranks.into_iter().map(|h| h.join().unwrap_or_else(|_| panic!("rank panicked")).unwrap_or_else(|e| panic!("{e}"))).collect();
            server.join().unwrap_or_else(|_| panic!("coordinator panicked")).unwrap_or_else(|e| panic!("{e}"));
            let expected: Vec<f32> = (0..len)
                .map(|i| (1..world).fold(value(0, i), |acc, r| acc + value(r, i)))
                .collect();
            for (r, got) in results.iter().enumerate() {
                assert_eq!(got.len(), len);
                let wrong = got.iter().zip(&expected).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                assert_eq!(wrong, 0, "world {world}, rank {r}: {wrong} sums differ from the rank-order sum");
            }
        }
    }

    #[test]
    fn buffers_of_different_lengths_fail_on_every_rank_without_hanging() {
        let (addr, server) = start(2);
        let started = Instant::now();
        let ranks = spawn_ranks(&addr, 2, 0..2, |r, p| p.sum_f32(&mut vec![1.0f32; 10 * (r + 1)]));
        let errors: Vec<String> = ranks
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("rank panicked")).err().map(|e| e.to_string()).unwrap_or_default())
            .collect();
        assert!(errors.iter().any(|e| e.contains("different lengths")), "{errors:?}");
        assert!(errors.iter().all(|e| !e.is_empty()), "every rank must fail: {errors:?}");
        assert!(started.elapsed() < Duration::from_secs(40), "took {:?}", started.elapsed());
        drop(server);
    }

    #[test]
    fn a_rank_of_another_job_is_refused_and_every_rank_is_told() {
        let (addr, server) = start(2);
        let a = {
            let addr = addr.clone();
            std::thread::spawn(move || Peer::connect(&addr, &hello(0, 2, "a"), Duration::from_secs(10), Duration::from_secs(30)).map(|_| ()))
        };
        let b = Peer::connect(&addr, &hello(1, 2, "b"), Duration::from_secs(10), Duration::from_secs(30)).map(|_| ());
        let a = a.join().unwrap_or_else(|_| panic!("rank panicked"));
        let served = server.join().unwrap_or_else(|_| panic!("coordinator panicked"));
        for r in [a, b, served] {
            let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(msg.contains("rank 1 refused") && msg.contains("config differs"), "{msg}");
        }
    }

    #[test]
    fn a_lost_rank_stops_the_others_with_its_name() {
        // With 3 ranks the lost rank's ring neighbours differ: rank 0 reads from it, rank 1
        // only from rank 0.
        for world in [2usize, 3] {
            let lost = world - 1;
            let (addr, server) = start(world);
            let survivors = spawn_ranks(&addr, world, 0..lost, |_, p| {
                let mut v = vec![1.0f32; 100_000];
                p.sum_f32(&mut v)?;
                p.sum_f32(&mut v)
            });
            {
                let p = Peer::connect(&addr, &hello(lost, world, "a"), Duration::from_secs(10), Duration::from_secs(30))
                    .unwrap_or_else(|e| panic!("{e}"));
                let mut v = vec![1.0f32; 100_000];
                p.sum_f32(&mut v).unwrap_or_else(|e| panic!("{e}"));
                // Dropped here: the connections close as a killed process's would.
            }
            let started = Instant::now();
            for (r, s) in survivors.into_iter().enumerate() {
                let err = s.join().unwrap_or_else(|_| panic!("rank panicked")).err().map(|e| e.to_string()).unwrap_or_default();
                assert!(err.contains(&format!("lost rank {lost}")), "world {world}, rank {r}: {err}");
            }
            assert!(started.elapsed() < Duration::from_secs(15));
            assert!(server.join().unwrap_or_else(|_| panic!("coordinator panicked")).is_err());
        }
    }

    #[test]
    fn a_difference_in_vocabulary_data_or_world_is_named() {
        let base = |v: &str, d: &str| {
            let fingerprints = [("config", "c"), ("vocabulary", v), ("data manifest", d)]
                .into_iter()
                .map(|(k, x)| (k.to_string(), x.to_string()))
                .collect();
            Hello { protocol: PROTOCOL, job: "c".into(), world: 2, rank: 1, fingerprints }
        };
        let rank0 = base("v1", "d1");
        assert_eq!(base("v1", "d1").differs_from(&rank0), None);
        let vocab = base("v2", "d1").differs_from(&rank0).unwrap_or_default();
        assert!(vocab.contains("vocabulary differs") && vocab.contains("v2 vs v1"), "{vocab}");
        let data = base("v1", "d2").differs_from(&rank0).unwrap_or_default();
        assert!(data.contains("data manifest differs"), "{data}");
        let world = Hello { world: 3, ..base("v1", "d1") }.differs_from(&rank0).unwrap_or_default();
        assert!(world.contains("--world 3"), "{world}");
        let job = Hello { job: "other".into(), ..base("v1", "d1") }.differs_from(&rank0).unwrap_or_default();
        assert!(job.contains("another job"), "{job}");
    }

    #[test]
    fn a_port_in_use_is_a_clear_error() {
        let c = Coordinator::bind("127.0.0.1:0", 1).unwrap_or_else(|e| panic!("{e}"));
        let addr = c.local_addr().unwrap_or_else(|e| panic!("{e}")).to_string();
        let err = Coordinator::bind(&addr, 1).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    }

    #[test]
    fn rows_split_into_contiguous_blocks() {
        assert_eq!((0..3).map(|r| split_rows(8, r, 3)).collect::<Vec<_>>(), vec![0..2, 2..5, 5..8]);
        assert_eq!(split_rows(8, 0, 1), 0..8);
    }
}
