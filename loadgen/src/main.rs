//! The standalone `loadgen` binary: the same commands as `boxoffice loadgen`.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Load tester for Boxoffice: scenarios, open-loop load, record and replay"
)]
struct Cli {
    #[command(flatten)]
    args: loadgen::Args,
}

fn main() {
    let cli = Cli::parse();
    if let Err(error) = loadgen::run(cli.args) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}
