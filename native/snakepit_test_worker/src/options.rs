//! Start-up flags: how the worker misbehaves before (or instead of) its handshake.

/// What the command line asked for. Unknown arguments are ignored, so that a pool may pass the
/// same arguments it would give a real worker.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `--fail-start`: exit with status 3 at once, writing nothing.
    pub fail_start: bool,
    /// `--fatal-start`: send a `fatal` handshake, then exit with status 1.
    pub fatal_start: bool,
    /// `--hang-start`: never send a handshake.
    pub hang_start: bool,
    /// `--ignore-sigterm`: ignore SIGTERM for the whole life of the process.
    pub ignore_sigterm: bool,
    /// `--start-delay-ms N` (or `--start-delay-ms=N`): wait this long before the handshake.
    pub start_delay_ms: u64,
    /// `--bad-handshake`: make the first frame one that is not JSON.
    pub bad_handshake: bool,
    /// `--no-heartbeat`: do not announce heartbeat frames (the pool then health-checks with
    /// `ping` requests) and skip any that come.
    pub no_heartbeat: bool,
}

impl Options {
    /// Parses the arguments after the program name.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Options {
        let mut options = Options::default();
        let mut args = args.into_iter().peekable();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--fail-start" => options.fail_start = true,
                "--fatal-start" => options.fatal_start = true,
                "--hang-start" => options.hang_start = true,
                "--ignore-sigterm" => options.ignore_sigterm = true,
                "--bad-handshake" => options.bad_handshake = true,
                "--no-heartbeat" => options.no_heartbeat = true,
                // The value is taken only when it is a number, so a missing value cannot swallow
                // the next flag.
                "--start-delay-ms" => {
                    if let Some(value) = args.next_if(|value| value.parse::<u64>().is_ok()) {
                        options.start_delay_ms = value.parse().unwrap_or(0);
                    }
                }
                other => {
                    if let Some(value) = other.strip_prefix("--start-delay-ms=") {
                        options.start_delay_ms = value.parse().unwrap_or(0);
                    }
                }
            }
        }
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Options {
        Options::parse(args.iter().map(|arg| arg.to_string()))
    }

    #[test]
    fn no_flags_is_a_well_behaved_worker() {
        assert_eq!(parse(&[]), Options::default());
    }

    #[test]
    fn every_flag() {
        let options = parse(&[
            "--fail-start",
            "--fatal-start",
            "--hang-start",
            "--ignore-sigterm",
            "--bad-handshake",
            "--no-heartbeat",
            "--start-delay-ms",
            "250",
        ]);
        assert_eq!(
            options,
            Options {
                fail_start: true,
                fatal_start: true,
                hang_start: true,
                ignore_sigterm: true,
                start_delay_ms: 250,
                bad_handshake: true,
                no_heartbeat: true,
            }
        );
    }

    #[test]
    fn delay_with_equals_sign() {
        assert_eq!(parse(&["--start-delay-ms=40"]).start_delay_ms, 40);
    }

    #[test]
    fn delay_without_a_number_leaves_the_next_flag_alone() {
        let options = parse(&["--start-delay-ms", "--hang-start"]);
        assert_eq!(options.start_delay_ms, 0);
        assert!(options.hang_start);
    }

    #[test]
    fn unknown_arguments_are_ignored() {
        let options = parse(&["--adapter", "x.Y", "--ignore-sigterm", "stray"]);
        assert_eq!(
            options,
            Options {
                ignore_sigterm: true,
                ..Options::default()
            }
        );
    }
}
