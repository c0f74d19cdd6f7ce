//! A TCP proxy on a free loopback port that relays everything to an upstream server, and can be
//! told to cut a connection right after it relayed a request: the request reaches the server
//! (which applies it), its answer never reaches the client. What a connection breaking after a
//! write left looks like, on demand.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A running proxy; it stops taking connections when dropped.
pub struct CuttingProxy {
    address: SocketAddr,
    /// Bytes that, seen in a request, make the proxy cut that connection after relaying it.
    cut_on: Arc<Mutex<Option<Vec<u8>>>>,
    /// How many connections were cut.
    cut: Arc<Mutex<usize>>,
    stopped: Arc<AtomicBool>,
}

impl CuttingProxy {
    /// A proxy to `upstream`.
    pub fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let cut_on = Arc::new(Mutex::new(None::<Vec<u8>>));
        let cut = Arc::new(Mutex::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let (cut_on_, cut_, stopped_) = (cut_on.clone(), cut.clone(), stopped.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped_.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                relay(client, server, cut_on_.clone(), cut_.clone());
            }
        });
        Ok(Self {
            address,
            cut_on,
            cut,
            stopped,
        })
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Cuts the next connection whose request contains `pattern`, once the server has answered
    /// that request (so it was applied), without relaying the answer; only once.
    pub fn cut_after(&self, pattern: &[u8]) {
        *self.cut_on.lock().unwrap_or_else(PoisonError::into_inner) = Some(pattern.to_vec());
    }

    /// How many connections the proxy has cut.
    pub fn cuts(&self) -> usize {
        *self.cut.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

/// Relays `client` to `server` and back on two threads.
fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    cut_on: Arc<Mutex<Option<Vec<u8>>>>,
    cut: Arc<Mutex<usize>>,
) {
    let (Ok(mut client_back), Ok(mut server_back)) = (client.try_clone(), server.try_clone())
    else {
        return;
    };
    // Set before the request that is cut goes to the server: its answer is not relayed.
    let cutting = Arc::new(AtomicBool::new(false));
    let cutting_back = cutting.clone();
    std::thread::spawn(move || {
        let mut buffer = vec![0_u8; 64 << 10];
        while let Ok(read) = client.read(&mut buffer) {
            if read == 0 {
                break;
            }
            let seen = &buffer[..read];
            let armed = {
                let mut cut_on = cut_on.lock().unwrap_or_else(PoisonError::into_inner);
                let hit = cut_on
                    .as_ref()
                    .is_some_and(|pattern| seen.windows(pattern.len()).any(|w| w == pattern));
                if hit {
                    *cut_on = None;
                    cutting.store(true, Ordering::SeqCst);
                }
                hit
            };
            if server.write_all(seen).is_err() || armed {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        let mut buffer = vec![0_u8; 64 << 10];
        while let Ok(read) = server_back.read(&mut buffer) {
            if read == 0 {
                break;
            }
            if cutting_back.load(Ordering::SeqCst) {
                // The server answered the cut request (so it applied it): the answer goes
                // nowhere, and the connection closes on both sides.
                *cut.lock().unwrap_or_else(PoisonError::into_inner) += 1;
                break;
            }
            if client_back.write_all(&buffer[..read]).is_err() {
                break;
            }
        }
        let _ = client_back.shutdown(Shutdown::Both);
        let _ = server_back.shutdown(Shutdown::Both);
    });
}
