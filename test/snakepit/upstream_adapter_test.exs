defmodule Snakepit.UpstreamAdapterTest do
  # Adapters written against upstream Snakepit's callbacks (v0.4.3, v0.13.0) run unchanged:
  # real OS workers, launched as `executable_path() script_path() args...`.
  use ExUnit.Case, async: true

  alias Snakepit.{Error, TestPool}

  @support Path.expand("../support/python", __DIR__)

  defmodule UpstreamAdapter do
    # As upstream's docs show it: arity-0 callbacks, a command-specific timeout.
    @behaviour Snakepit.Adapter

    @impl true
    def executable_path, do: System.find_executable("python3")

    @impl true
    def script_path, do: Path.expand("../support/python/upstream_style_worker.py", __DIR__)

    @impl true
    def script_args, do: ["--adapter", "snakepit_test_adapter.TestAdapter"]

    @impl true
    def command_timeout("sleep", _args), do: 100
    def command_timeout(_command, _args), do: 30_000
  end

  defmodule ShapingAdapter do
    # v0.4.3's optional callbacks: args and results reshaped on the caller's side.
    @behaviour Snakepit.Adapter

    @impl true
    def executable_path, do: System.find_executable("python3")

    @impl true
    def script_path, do: Path.expand("../support/python/upstream_style_worker.py", __DIR__)

    @impl true
    def script_args, do: []

    @impl true
    def supported_commands, do: ["echo"]

    @impl true
    def validate_command(_command, _args), do: :ok

    @impl true
    def prepare_args("echo", args), do: Map.put(args, :prepared, true)
    def prepare_args("bad_args", _args), do: :not_a_map
    def prepare_args(_command, args), do: args

    @impl true
    def process_response("echo", result), do: {:ok, %{"processed" => result}}
    def process_response(_command, result), do: {:error, {:refused, result}}
  end

  defp start_pool(adapter, opts \\ []) do
    bridge = Snakepit.Adapters.Python.bridge_path()

    TestPool.start!(
      Keyword.merge(
        [
          size: 1,
          adapter_module: adapter,
          adapter_args: [],
          env: [{"PYTHONPATH", "#{bridge}:#{@support}"}]
        ],
        opts
      )
    )
  end

  test "an upstream adapter's program runs, with its script and script_args/0" do
    pool = start_pool(UpstreamAdapter)

    assert {:ok, %{"pid" => os_pid}} = Snakepit.execute("whoami", %{}, pool: pool)

    assert worker_args(pool) == [
             UpstreamAdapter.script_path(),
             "--adapter",
             "snakepit_test_adapter.TestAdapter"
           ]

    assert [%{os_pid: ^os_pid}] = Snakepit.list_workers(pool)
  end

  test "the pool's adapter_args win over script_args/0 (v0.13)" do
    args = ["--adapter", "snakepit_test_adapter.TestAdapter"]
    pool = start_pool(ShapingAdapter, adapter_args: args)
    assert worker_args(pool) == [ShapingAdapter.script_path() | args]
  end

  test "command_timeout/2 is a call's timeout when it gives none; an explicit one wins" do
    pool = start_pool(UpstreamAdapter, size: 2)

    assert {:error, %Error{reason: :timeout, message: message}} =
             Snakepit.execute("sleep", %{ms: 60_000}, pool: pool)

    assert message =~ "within 100 ms"

    # The other worker is free: 300 ms would be past the adapter's 100.
    assert {:ok, _} = Snakepit.execute("sleep", %{ms: 300}, pool: pool, timeout: 10_000)
  end

  test "prepare_args/2 and process_response/2 apply to each call" do
    pool = start_pool(ShapingAdapter)

    assert {:ok, %{"processed" => %{"x" => 1, "prepared" => true}}} =
             Snakepit.execute("echo", %{x: 1}, pool: pool)

    assert {:error, %Error{reason: :invalid_result, message: message}} =
             Snakepit.execute("ping", %{}, pool: pool)

    assert message =~ "process_response/2 of #{inspect(ShapingAdapter)} refused"

    assert {:error, %Error{reason: :invalid_args, message: message}} =
             Snakepit.execute("bad_args", %{}, pool: pool)

    assert message =~ "prepare_args/2"
  end

  # The worker's command line after the interpreter.
  defp worker_args(pool) do
    [%{os_pid: os_pid}] = Snakepit.list_workers(pool)
    {:ok, cmdline} = File.read("/proc/#{os_pid}/cmdline")
    cmdline |> String.split(<<0>>, trim: true) |> tl()
  end

  test "a module that is no adapter of any style is refused, naming the option" do
    assert_raise ArgumentError, ~r/:adapter_module/, fn ->
      Snakepit.Pool.start_link(name: :not_an_adapter, adapter_module: Enum)
    end
  end
end
