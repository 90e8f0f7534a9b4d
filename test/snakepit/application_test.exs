defmodule Snakepit.ApplicationTest do
  # Restarts :snakepit, the application that runs Snakepit.Supervisor and the configured pools,
  # so it runs alone. Every test leaves the :snakepit environment and the BEAM's as it found them.
  use ExUnit.Case, async: false

  import Snakepit.LogForwarder, only: [forward_to_self: 0]

  alias Snakepit.Adapters.TestWorker
  alias Snakepit.TestPool

  setup do
    saved = Application.get_all_env(:snakepit)

    on_exit(fn ->
      Application.stop(:snakepit)

      for {key, _} <- Application.get_all_env(:snakepit),
          do: Application.delete_env(:snakepit, key)

      for {key, value} <- saved, do: Application.put_env(:snakepit, key, value)
      {:ok, _} = Application.ensure_all_started(:snakepit)
    end)

    Application.stop(:snakepit)
    :ok
  end

  defp configure(pool_size) do
    test_opts = TestPool.options()
    Application.put_env(:snakepit, :pooling_enabled, true)
    Application.put_env(:snakepit, :pool_size, pool_size)
    Application.put_env(:snakepit, :pool_queue_timeout, 1_234)
    Application.put_env(:snakepit, :pool_max_queue_size, 7)
    Application.put_env(:snakepit, :pool_startup_timeout, 20_000)

    Application.put_env(:snakepit, :pool_config, %{
      adapter_args: test_opts[:adapter_args],
      env: test_opts[:env]
    })
  end

  defp started?(app), do: List.keymember?(Application.started_applications(), app, 0)

  # Log events the handler sent while the application started (they are in the mailbox by the
  # time `ensure_all_started/1` returns: the handler runs in the process that logs).
  defp logged_warnings(acc \\ []) do
    receive do
      {:log, :warning, message, _meta} -> logged_warnings([message | acc])
      {:log, _level, _message, _meta} -> logged_warnings(acc)
    after
      0 -> Enum.reverse(acc)
    end
  end

  describe "upstream's application name" do
    test "ensure_all_started(:snakepit) starts it; stop(:snakepit) takes Snakepit.Supervisor down" do
      Application.put_env(:snakepit, :pooling_enabled, true)
      Application.put_env(:snakepit, :adapter_module, TestWorker)
      Application.put_env(:snakepit, :pool_size, 2)

      assert {:ok, [:snakepit]} = Application.ensure_all_started(:snakepit)
      assert started?(:snakepit)
      assert :ok = Snakepit.Pool.await_ready()
      os_pids = Snakepit.Pool.os_pids()
      assert length(os_pids) == 2

      supervisor = Process.whereis(Snakepit.Supervisor)
      ref = Process.monitor(supervisor)
      assert :ok = Application.stop(:snakepit)
      assert_receive {:DOWN, ^ref, :process, ^supervisor, _}
      refute started?(:snakepit)
      refute Process.whereis(Snakepit.Pool)
      refute Enum.any?(os_pids, &TestPool.os_process_alive?/1)

      assert {:ok, [:snakepit]} = Application.ensure_all_started(:snakepit)
      assert Process.whereis(Snakepit.Supervisor)
    end

    test "starting :snakepit_rs (what a user's application depends on) starts :snakepit" do
      Application.stop(:snakepit_rs)
      refute started?(:snakepit_rs)

      assert {:ok, apps} = Application.ensure_all_started(:snakepit_rs)
      assert :snakepit_rs in apps
      assert started?(:snakepit)
      assert Process.whereis(Snakepit.Supervisor)
    end

    test "in a BEAM without Mix (as in a release) both start from the ebin" do
      ebin = Path.join(:code.lib_dir(:snakepit_rs), "ebin")

      script = ~S"""
      {:ok, _} = Application.ensure_all_started(:snakepit_rs)
      IO.puts("started #{inspect(Enum.map(Application.started_applications(), &elem(&1, 0)))}")
      IO.puts("supervisor #{inspect(is_pid(Process.whereis(Snakepit.Supervisor)))}")
      :ok = Application.stop(:snakepit)
      IO.puts("after stop #{inspect(Process.whereis(Snakepit.Supervisor))}")
      """

      {output, 0} =
        System.cmd(System.find_executable("elixir"), ["-pa", ebin, "-e", script],
          stderr_to_stdout: true
        )

      assert output =~ ~r/started \[.*:snakepit_rs.*\]/
      assert output =~ ~r/started \[.*:snakepit[,\]]/
      assert output =~ "supervisor true"
      assert output =~ "after stop nil"
    end
  end

  describe "configuration" do
    test "pooling_enabled starts Snakepit.Pool from config :snakepit" do
      configure(3)

      assert Snakepit.Config.pool_options()
             |> Keyword.take([:size, :queue_timeout, :max_queue_size])
             |> Map.new() == %{size: 3, queue_timeout: 1_234, max_queue_size: 7}

      {:ok, _} = Application.ensure_all_started(:snakepit)
      assert :ok = Snakepit.Pool.await_ready()
      assert {:ok, %{"status" => "pong"}} = Snakepit.execute("ping", %{})
      assert %{workers: 3} = Snakepit.get_stats()
      assert {:ok, %{"pid" => _}} = Snakepit.execute("whoami", %{})
    end

    test "without pooling_enabled no pool starts" do
      Application.put_env(:snakepit, :pooling_enabled, false)
      {:ok, _} = Application.ensure_all_started(:snakepit)
      refute Process.whereis(Snakepit.Pool)
    end

    test "pools: one pool per entry; calls choose with pool_name: or pool:" do
      Application.put_env(:snakepit, :pooling_enabled, true)

      Application.put_env(:snakepit, :pools, [
        %{name: :default, pool_size: 1, adapter_module: TestWorker},
        %{name: :second, pool_size: 2, adapter_module: TestWorker, worker_profile: :process}
      ])

      {:ok, _} = Application.ensure_all_started(:snakepit)
      assert :ok = Snakepit.Pool.await_ready()
      assert :ok = Snakepit.Pool.await_ready(:second)

      assert {:ok, _} = Snakepit.execute("ping", %{}, pool_name: :default)
      assert {:ok, _} = Snakepit.execute("ping", %{})
      assert {:ok, _} = Snakepit.execute("ping", %{}, pool_name: :second)
      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: :second)
      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: Snakepit.Pool, pool_name: :second)

      assert %{workers: 1, requests: 2} = Snakepit.get_stats(Snakepit.Pool)
      assert %{workers: 2, requests: 3} = Snakepit.get_stats(:second)

      # The default pool answers to its upstream name everywhere a pool is named.
      assert :ok = Snakepit.Pool.await_ready(:default)
      assert %{workers: 1, requests: 2} = Snakepit.get_stats(:default)
      assert [_] = Snakepit.list_workers(:default)

      # Upstream's two-argument forms (its pools live inside one `Snakepit.Pool` process).
      assert %{workers: 2} = Snakepit.Pool.get_stats(Snakepit.Pool, :second)
      assert [_, _] = Snakepit.Pool.list_workers(Snakepit.Pool, :second)

      assert {:error, %Snakepit.Error{reason: :pool_not_found, category: :pool}} =
               Snakepit.execute("ping", %{}, pool_name: :missing)
    end

    test "upstream values start the pool; keys of features we lack get one warning each" do
      forward_to_self()
      Application.put_env(:snakepit, :pooling_enabled, true)
      Application.put_env(:snakepit, :adapter_module, TestWorker)
      Application.put_env(:snakepit, :grpc_port, 50_051)
      Application.put_env(:snakepit, :affinity, :hint)
      Application.put_env(:snakepit, :pool_request_timeout, 60_000)
      Application.put_env(:snakepit, :heartbeat, %{ping_interval_ms: 2_000, timeout_ms: 10_000})

      Application.put_env(:snakepit, :pools, [
        %{name: :default, pool_size: 1, worker_ttl: {1, :hours}, affinity: :strict_queue},
        %{name: :other, pool_size: 1, worker_ttl: :infinity, worker_max_requests: :infinity}
      ])

      {:ok, _} = Application.ensure_all_started(:snakepit)
      warnings = Enum.filter(logged_warnings(), &(&1 =~ "config :snakepit"))
      assert [grpc] = Enum.filter(warnings, &(&1 =~ "grpc_port"))
      assert grpc =~ "ignored"
      # `affinity` is read (session affinity): no warning.
      assert [] = Enum.filter(warnings, &(&1 =~ "affinity"))
      assert length(warnings) == 1

      assert :ok = Snakepit.Pool.await_ready()
      assert :ok = Snakepit.Pool.await_ready(:other)
      assert {:ok, _} = Snakepit.execute("ping", %{}, pool_name: :other)
    end

    test "an invalid value stops the start with an ArgumentError naming the key and the value" do
      Application.put_env(:snakepit, :pooling_enabled, true)
      Application.put_env(:snakepit, :pool_config, %{worker_ttl: {3, :days}})

      assert {:error, {:snakepit, reason}} = Application.ensure_all_started(:snakepit)
      assert inspect(reason) =~ "ArgumentError"
      assert inspect(reason) =~ "pool_config.worker_ttl"
      assert inspect(reason) =~ "{3, :days}"
      refute Process.whereis(Snakepit.Supervisor)
    end

    test "log_level sets our modules' Logger level while :snakepit runs" do
      forward_to_self()
      Application.put_env(:snakepit, :log_level, :error)
      # A key snakepit_rs does not read: its warning is below the level asked for.
      Application.put_env(:snakepit, :grpc_port, 50_051)
      {:ok, _} = Application.ensure_all_started(:snakepit)
      assert Logger.get_module_level(Snakepit.Pool) == [{Snakepit.Pool, :error}]
      # Logger handlers run in the logging process: a warning would be in the mailbox by now.
      refute_received {:log, :warning, _, _}

      Application.stop(:snakepit)
      assert Logger.get_module_level(Snakepit.Pool) == []
    end
  end

  describe "the workers' environment" do
    @probe """
    import os
    import sys

    from snakepit_bridge import BaseAdapter, tool


    class Probe(BaseAdapter):
        @tool(description="An environment variable of this worker")
        def getenv(self, name):
            return os.environ.get(name)

        @tool(description="The interpreter running this worker")
        def executable(self):
            return sys.executable
    """

    @tag :tmp_dir
    test "extends the BEAM's: its PYTHONPATH is kept; pool_config.adapter_env and the top-level python_executable are read",
         %{tmp_dir: dir} do
      # The adapter module is found only through the BEAM's PYTHONPATH.
      beam_dir = Path.join(dir, "beam_path")
      File.mkdir_p!(beam_dir)
      File.write!(Path.join(beam_dir, "beam_path_probe.py"), @probe)
      saved = System.get_env("PYTHONPATH")

      on_exit(fn ->
        if saved, do: System.put_env("PYTHONPATH", saved), else: System.delete_env("PYTHONPATH")
      end)

      System.put_env("PYTHONPATH", beam_dir)

      # An interpreter under a name of our own: the worker reports it as sys.executable.
      python = Path.join(dir, "configured-python3")
      File.ln_s!(Snakepit.Adapters.Python.resolve_interpreter("python3"), python)

      Application.put_env(:snakepit, :pooling_enabled, true)
      Application.put_env(:snakepit, :pool_size, 1)
      Application.put_env(:snakepit, :python_executable, python)

      Application.put_env(:snakepit, :pool_config, %{
        adapter_args: ["--adapter", "beam_path_probe.Probe"],
        adapter_env: [{"PROBE_VALUE", 42}],
        env: [{"PYTHONPATH", "/pool/own/path"}]
      })

      {:ok, _} = Application.ensure_all_started(:snakepit)
      assert :ok = Snakepit.Pool.await_ready(Snakepit.Pool, 30_000)
      assert {:ok, "42"} = Snakepit.execute("getenv", %{name: "PROBE_VALUE"})
      assert {:ok, ^python} = Snakepit.execute("executable", %{})

      assert {:ok, python_path} = Snakepit.execute("getenv", %{name: "PYTHONPATH"})
      bridge = Snakepit.Adapters.Python.bridge_path()
      assert python_path == Enum.join([bridge, "/pool/own/path", beam_dir], ":")
    end
  end

  describe "run_as_script" do
    test "starts the pool, runs the function and leaves no worker process" do
      configure(2)
      Application.put_env(:snakepit, :pooling_enabled, false)

      # With pooling disabled in the config, upstream's v0.13 only starts a pool when asked to.
      {result, os_pids} =
        Snakepit.run_as_script(
          fn ->
            {:ok, %{"status" => "pong"} = pong} = Snakepit.execute("ping", %{})
            {pong["status"], Snakepit.Pool.os_pids()}
          end,
          await_pool: true
        )

      assert result == "pong"
      assert length(os_pids) == 2
      refute Enum.any?(os_pids, &TestPool.os_process_alive?/1)
      refute Process.whereis(Snakepit.Pool)
    end

    test "returns the pool's error when it cannot start" do
      configure(1)
      Application.put_env(:snakepit, :pool_config, %{adapter_args: ["--adapter", "missing.Mod"]})

      assert {:error, %Snakepit.Error{reason: :pool_not_initialized}} =
               Snakepit.run_as_script(fn -> flunk("must not run") end)
    end
  end
end
