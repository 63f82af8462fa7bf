//! The mock provider on its own (`goodhart-mock --addr 127.0.0.1:18091`): what the benchmarks
//! measure the gateway against, one thread, every protocol the gateway speaks.

use std::net::SocketAddr;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = match (args.next().as_deref(), args.next()) {
        (Some("--addr"), Some(addr)) => addr
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("--addr {addr}: {e}")))?,
        (None, _) => SocketAddr::from(([127, 0, 0, 1], 18_091)),
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "usage: goodhart-mock [--addr HOST:PORT]",
            ));
        }
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("mock provider on http://{}", listener.local_addr()?);
    goodhart_sim::mock_provider::serve(listener).await
}
