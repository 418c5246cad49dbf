//! Reading the TAP ahead of the grant copies: a thread of its own reads
//! frames into a bounded pool of [`RxSlot`]s while the queue's thread copies
//! the previous ones into the guest's buffers (xen-netback copies in its
//! receive kthread while dom0's stack queues the next frames, on the other
//! vCPU). Frames keep their order: one reader, one channel. The reader sleeps
//! when the pool is used up (the queue's thread gives a slot back for each
//! frame it takes) and when the TAP is empty; it wakes the queue's thread
//! through a socket only when that thread said it sleeps.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{FrameIo, RxSlot};

/// Frames the reader may hold read ahead (beside the queue thread's own
/// slots): a little more than a copy batch's worth of 64 KiB frames, ~1.1 MiB.
pub const READ_AHEAD_SLOTS: usize = 16;

/// How long the reader sleeps between looks at its stop flag.
const READER_POLL: Duration = Duration::from_millis(100);

/// The queue thread's end of the read-ahead.
#[derive(Debug)]
pub struct RxPipe {
    full: Receiver<io::Result<RxSlot>>,
    free: Sender<RxSlot>,
    /// A frame (or the reader's error) taken off `full` by
    /// [`RxPipe::ready_or_arm`].
    peeked: Option<io::Result<RxSlot>>,
    /// Set by the queue's thread before it sleeps; the reader clears it and
    /// writes to `wake` when it hands over a frame.
    sleeping: Arc<AtomicBool>,
    wake: UnixStream,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RxPipe {
    /// Starts a reader of `io` named `name` with [`READ_AHEAD_SLOTS`] slots.
    pub fn start<F: FrameIo + Send + Sync + 'static>(io: Arc<F>, name: String) -> io::Result<Self> {
        let (full_tx, full) = mpsc::channel();
        let (free, free_rx) = mpsc::channel();
        for _ in 0..READ_AHEAD_SLOTS {
            let _ = free.send(RxSlot::new());
        }
        let (wake, wake_tx) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        let sleeping = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = Reader {
            io,
            free: free_rx,
            full: full_tx,
            sleeping: Arc::clone(&sleeping),
            wake: wake_tx,
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || reader.run())?;
        Ok(Self {
            full,
            free,
            peeked: None,
            sleeping,
            wake,
            stop,
            thread: Some(thread),
        })
    }

    /// The next frame read, if one is: `Ok(None)` when none is yet; the
    /// reader's error once it failed.
    pub(crate) fn take(&mut self) -> io::Result<Option<RxSlot>> {
        if let Some(r) = self.peeked.take() {
            return r.map(Some);
        }
        match self.full.try_recv() {
            Ok(r) => r.map(Some),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the TAP reader ended",
            )),
        }
    }

    /// Gives a slot whose frame was copied back to the reader.
    pub(crate) fn give_back(&mut self, slot: RxSlot) {
        // The reader ends only when told to or after an error (reported by
        // `take`): a slot it no longer needs can go.
        let _ = self.free.send(slot);
    }

    /// Before the queue's thread sleeps: `true` when a frame is ready (then it
    /// must not sleep); else the reader wakes [`RxPipe::wake_fd`] with the
    /// next frame.
    pub fn ready_or_arm(&mut self) -> bool {
        if self.peeked.is_some() {
            return true;
        }
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        match self.full.try_recv() {
            Ok(r) => {
                self.peeked = Some(r);
                self.sleeping.store(false, Ordering::SeqCst);
                true
            }
            // A gone reader: `take` reports it.
            Err(TryRecvError::Disconnected) => {
                self.sleeping.store(false, Ordering::SeqCst);
                true
            }
            Err(TryRecvError::Empty) => false,
        }
    }

    /// What the queue's thread polls for the reader's next frame (a handle
    /// of its own on the wake-up socket).
    pub fn wake_handle(&self) -> io::Result<UnixStream> {
        self.wake.try_clone()
    }

    /// After the queue's thread woke: empties the wake-up socket.
    pub fn woke(&mut self) {
        self.sleeping.store(false, Ordering::SeqCst);
        let mut b = [0u8; 64];
        while matches!((&self.wake).read(&mut b), Ok(n) if n > 0) {}
    }
}

impl Drop for RxPipe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("a TAP reader thread panicked");
            }
        }
    }
}

/// The reader thread's end.
struct Reader<F> {
    io: Arc<F>,
    free: Receiver<RxSlot>,
    full: Sender<io::Result<RxSlot>>,
    sleeping: Arc<AtomicBool>,
    wake: UnixStream,
    stop: Arc<AtomicBool>,
}

impl<F: FrameIo> Reader<F> {
    fn run(self) {
        loop {
            let mut slot = loop {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                match self.free.recv_timeout(READER_POLL) {
                    Ok(s) => break s,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            loop {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                match slot.read_from(&*self.io) {
                    Ok(true) => break,
                    Ok(false) => {
                        if let Err(e) = self.io.wait_readable(READER_POLL) {
                            self.hand_over(Err(e));
                            return;
                        }
                    }
                    Err(e) => {
                        self.hand_over(Err(e));
                        return;
                    }
                }
            }
            if !self.hand_over(Ok(slot)) {
                return;
            }
        }
    }

    /// Sends a frame (or the error that ends the reader) and wakes the queue's
    /// thread when it sleeps; `false` when that thread is gone.
    fn hand_over(&self, r: io::Result<RxSlot>) -> bool {
        if self.full.send(r).is_err() {
            return false;
        }
        fence(Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            // A full socket already wakes it.
            let _ = (&self.wake).write(&[1]);
        }
        true
    }
}
