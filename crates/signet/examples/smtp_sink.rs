//! A minimal, fast SMTP receiver for the outbox benchmark (`bench/outbox.sh`): it speaks just
//! enough SMTP (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) to accept every message and
//! appends each message's Message-ID to a file, so the benchmark measures Signet rather than a
//! Python receiver. Not a mail server: no checks, no storage of the messages themselves.
//!
//! Usage: `smtp_sink PORT IDS_FILE`; prints "ready" once it listens.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().expect("PORT").parse().expect("a port number");
    let ids = args.next().expect("IDS_FILE");
    let ids = Arc::new(Mutex::new(std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ids)?,
    )));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("ready");
    loop {
        let (socket, _) = listener.accept().await?;
        let ids = ids.clone();
        tokio::spawn(async move {
            let _ = session(socket, ids).await;
        });
    }
}

async fn session(
    socket: tokio::net::TcpStream,
    ids: Arc<Mutex<std::io::BufWriter<std::fs::File>>>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP\r\n").await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") {
            b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if command.starts_with("DATA") {
            write.write_all(b"354 go on\r\n").await?;
            let mut message_id = String::new();
            let mut in_headers = true;
            loop {
                line.clear();
                if lines.read_until(b'\n', &mut line).await? == 0 {
                    return Ok(());
                }
                if line == b".\r\n" {
                    break;
                }
                if in_headers {
                    if line == b"\r\n" {
                        in_headers = false;
                    } else if line.len() > 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
                        message_id = String::from_utf8_lossy(&line[11..]).trim().to_owned();
                    }
                }
            }
            {
                let mut ids = ids.lock().unwrap();
                writeln!(ids, "{message_id}")?;
                ids.flush()?;
            }
            b"250 queued\r\n"
        } else if command.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            // HELO, MAIL, RCPT, RSET, NOOP: accepted.
            b"250 ok\r\n"
        };
        write.write_all(reply).await?;
    }
}
