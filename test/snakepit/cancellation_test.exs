defmodule Snakepit.CancellationTest do
  # A request past its `:timeout` is cancelled in its worker (a cancel frame, docs/protocol.md):
  # a Python tool that stops keeps its worker; one that cannot stop is killed after
  # `:cancel_grace` and replaced. Real Python workers run
  # test/support/python/cancellation_adapter.py, whose tools print when they start and when
  # cancellation stops them; the pool logs what workers print, so the tests wait for those lines.
  use ExUnit.Case, async: true

  alias Snakepit.{Call, Error, TestPool}

  @adapter_args ["--adapter", "cancellation_adapter.CancellationAdapter"]

  # Long enough for the tool to have started when its timeout passes, even on a loaded machine:
  # the tests wait for the tool's "started" line before the timeout.
  @timeout 1_000

  setup do
    Snakepit.LogForwarder.forward_to_self()
    :ok
  end

  defp start_pool(opts) do
    TestPool.start!(Keyword.merge([size: 1, adapter_args: @adapter_args], opts))
  end

  # Runs `tool` past its timeout: the caller gets `:timeout` once the tool has started.
  defp overrun(pool, tool, args) do
    {:ok, pending} = Call.submit(pool, tool, args, timeout: @timeout)
    assert_worker_says(pool, "#{tool} started")
    assert {:error, %Error{reason: :timeout}} = Call.await(pending)
  end

  # Waits until a worker of `pool` printed `cancellation_adapter: <text>`.
  defp assert_worker_says(pool, text),
    do: Snakepit.LogForwarder.assert_worker_logged(pool, "] cancellation_adapter: " <> text)

  defp assert_kept(pool, os_pid) do
    assert {:ok, %{"pid" => ^os_pid}} = Snakepit.execute("whoami", %{}, pool: pool)
    assert %{timeouts: 1, workers_killed: 0, worker_crashes: 0} = Snakepit.get_stats(pool)
  end

  describe "a tool that cancellation stops keeps its worker" do
    # {tool, its args, how cancellation reaches it}
    for {tool, args, how} <- [
          {"spin", %{}, "a Python loop: interrupted by the exception raised in it"},
          {"wait_for_cancel", %{}, "a wait on the request's cancel event: ended by the flag"},
          {"poll_cancelled", %{}, "a tool polling self.session_context.cancelled"},
          {"async_sleep", %{seconds: 60}, "an async tool: its task is cancelled"}
        ] do
      test how do
        pool = start_pool(cancel_grace: 30_000)
        os_pid = TestPool.only_worker_pid(pool)

        overrun(pool, unquote(tool), unquote(Macro.escape(args)))

        assert_worker_says(pool, unquote(tool) <> " cancelled")
        assert_kept(pool, os_pid)
      end
    end
  end

  test "a tool blocked in C (time.sleep) cannot be stopped: killed after the grace period, replaced" do
    pool = start_pool(cancel_grace: 200)
    victim = TestPool.only_worker_pid(pool)

    overrun(pool, "sleep", %{seconds: 60})

    assert_receive {:snakepit_pool_event, ^pool, {:worker_exit, _, ^victim, _}}
    refute TestPool.os_process_alive?(victim)

    assert_receive {:snakepit_pool_event, ^pool, {:worker_ready, _, replacement}}
                   when replacement != victim

    assert {:ok, %{"pid" => ^replacement}} = Snakepit.execute("whoami", %{}, pool: pool)
    assert %{timeouts: 1, workers_killed: 1} = Snakepit.get_stats(pool)
  end
end
