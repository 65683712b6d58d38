//! The `gatehouse` binary: parse arguments, run the command, turn errors into
//! exit codes. All work happens in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    gatehouse::cli::main()
}
