//! `xos origin-serve ADDRESS`: the sample origin server of the `cdn` configuration. Every GET
//! answers 200 with content generated from its path (the same bytes for the same path), marked
//! cacheable for ten minutes; each request is one line on standard output (the instance's log),
//! so what reached the origin through the caches can be counted. Runs without an async runtime:
//! it is what a local instance runs.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Serve forever on `address`.
pub fn serve(address: &str) -> ! {
    let listener = match TcpListener::bind(address) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {address}: {e}");
            std::process::exit(1);
        }
    };
    println!("origin serving on http://{address}/ (pid {})", std::process::id());
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || answer(stream));
    }
    std::process::exit(0)
}

/// The content of `path`: a page that names it, with a body long enough to be worth caching.
pub fn content(path: &str) -> String {
    let mut body = format!("XOS sample origin: {path}\n");
    for i in 0..64 {
        body.push_str(&format!("line {i:02} of {path}\n"));
    }
    body
}

fn answer(mut stream: TcpStream) {
    let head = xos_service::read_request_head(&mut stream, Duration::from_secs(5));
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or("/"));
    // Plain characters only in the log and the page.
    let path: String = path.chars().filter(|c| c.is_ascii_graphic()).take(512).collect();
    println!("{method} {path}");
    let (status, body) = if method == "GET" || method == "HEAD" {
        ("200 OK", content(&path))
    } else {
        ("405 Method Not Allowed", String::new())
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: public, max-age=600\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(body.as_bytes());
    }
}
