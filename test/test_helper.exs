# Tests run against real Python workers. Tags: :integration (the default for pool tests).
# An `assert_receive` waits for an event; on a loaded machine (CI, 2 cores) events can take
# seconds, and a wait only lasts as long as the event takes, so the default bound is generous.
ExUnit.start(capture_log: true, assert_receive_timeout: 10_000)
