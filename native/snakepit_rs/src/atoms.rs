//! Atoms used across the NIF boundary.

rustler::atoms! {
    ok,
    ok_json,
    error,
    nil,
    true_ = "true",
    false_ = "false",

    // stream messages (`stream.rs`), and what halting a stream found
    chunk,
    chunk_stall,
    done,
    halted,
    ended,

    // check_deadline answers
    wait,
    expired,
    replied,

    // error reasons (upstream Snakepit names where one exists)
    queue_timeout,
    pool_saturated,
    timeout,
    worker_crashed,
    pool_not_initialized,
    pool_shutdown,
    circuit_open,
    invalid_command,
    invalid_args,
    args_too_large,
    protocol_error,
    worker_error,
    unknown_command,
    invalid_result,
    worker_busy,
    session_worker_unavailable,
    streaming_not_supported,

    // messages to the pool's owner process
    snakepit_event,
    snakepit_log,
    stdout,
    stderr,
    ready,
    start_failed,
    worker_ready,
    worker_exit,
    worker_retired,
    worker_start_failed,
    circuit_closed,
    caller_gone,
    health_check_passed,
    health_check_failed,

    // BEAM workers: the owner's orders, a worker's messages
    snakepit_beam,
    start,
    kill,
    not_wanted,
    snakepit_request,
    snakepit_cancel,
    snakepit_health_check,
    snakepit_close,

    // worker states
    available,
    busy,
    starting,
    draining,

    // structs in args (`codec::calendar`): the key that marks one, the calendar modules and
    // their fields
    struct_ = "__struct__",
    date_module = "Elixir.Date",
    time_module = "Elixir.Time",
    naive_date_time_module = "Elixir.NaiveDateTime",
    date_time_module = "Elixir.DateTime",
    calendar_iso = "Elixir.Calendar.ISO",
    calendar,
    year,
    month,
    day,
    hour,
    minute,
    second,
    microsecond,
    utc_offset,
    std_offset,
    time_zone,
}
