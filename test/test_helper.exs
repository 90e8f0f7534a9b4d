# Tests run against real Python workers. Tags: :integration (the default for pool tests).
ExUnit.start(capture_log: true)
