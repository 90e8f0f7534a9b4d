defmodule Snakepit.UpstreamConfigTest do
  # Upstream Snakepit's configuration (v0.4.3, v0.13.0) read into pool options. Pure: each test
  # passes its own environment to `Snakepit.Config`; application_test.exs starts the real thing.
  use ExUnit.Case, async: true

  alias Snakepit.Config
  alias Snakepit.Pool.Options

  defp default_pool(env), do: hd(Config.pools!(env))

  defp raises(env, fun \\ &Config.pools!/1) do
    error = assert_raise ArgumentError, fn -> fun.(env) end
    Exception.message(error)
  end

  describe "one pool (no pools:)" do
    test "is Snakepit.Pool, from the top-level keys and pool_config" do
      opts =
        default_pool(
          pool_queue_timeout: 1_500,
          pool_max_queue_size: 9,
          pool_startup_timeout: 12_000,
          graceful_shutdown_timeout_ms: 3_000,
          python_executable: "/opt/venv/bin/python3",
          pool_config: %{adapter_args: ["--adapter", "pkg.Adapter"], cancel_grace: 700}
        )

      assert opts[:name] == Snakepit.Pool
      assert opts[:queue_timeout] == 1_500
      assert opts[:max_queue_size] == 9
      assert opts[:startup_timeout] == 12_000
      assert opts[:shutdown_grace] == 3_000
      assert opts[:python_executable] == "/opt/venv/bin/python3"
      assert opts[:adapter_args] == ["--adapter", "pkg.Adapter"]
      assert opts[:cancel_grace] == 700
      assert Options.validate!(opts)
    end

    test "the top-level pool_size wins over pool_config's (v0.13)" do
      assert default_pool(pool_size: 3, pool_config: %{pool_size: 8})[:size] == 3
      assert default_pool(pool_config: %{pool_size: 8})[:size] == 8
      assert default_pool(default_pool_size: 5)[:size] == 5
      assert default_pool([])[:size] == nil
    end

    test "pool_config wins over the top level for everything else" do
      opts =
        default_pool(
          python_executable: "/usr/bin/python3",
          worker_ttl: {1, :minutes},
          pool_config: %{python_executable: "/opt/py", worker_ttl: {2, :minutes}}
        )

      assert opts[:python_executable] == "/opt/py"
      assert opts[:worker_ttl] == 120_000
    end

    test "pool_config.adapter_env becomes the workers' env, as strings; env wins over it" do
      opts =
        default_pool(
          pool_config: %{
            adapter_env: [{"OMP_NUM_THREADS", 1}, {:MODE, :fast}, {"KEPT", "a"}],
            env: [{"KEPT", "b"}]
          }
        )

      assert Enum.sort(opts[:env]) == [{"KEPT", "b"}, {"MODE", "fast"}, {"OMP_NUM_THREADS", "1"}]
      assert default_pool(pool_config: %{adapter_env: %{"A" => "1"}})[:env] == [{"A", "1"}]
    end
  end

  describe "pools:" do
    setup do
      env = [
        default_pool_size: 2,
        pool_config: %{adapter_args: ["--adapter", "pkg.Fallback"]},
        pools: [
          %{name: :default, pool_size: 4, adapter_env: [{"WHO", "first"}]},
          %{name: :ml, adapter_args: ["--adapter", "pkg.Model"], worker_ttl: :infinity},
          [name: :batch, pool_size: 1, worker_max_requests: 100]
        ]
      ]

      %{env: env}
    end

    test "start one pool per entry; the first is Snakepit.Pool, the others their name", %{
      env: env
    } do
      assert [first, ml, batch] = Config.pools!(env)
      assert first[:name] == Snakepit.Pool
      assert ml[:name] == :ml
      assert batch[:name] == :batch
      assert {first[:size], ml[:size], batch[:size]} == {4, 2, 1}
      assert first[:env] == [{"WHO", "first"}]
      assert batch[:worker_max_requests] == 100
      assert ml[:worker_ttl] == nil
      for opts <- [first, ml, batch], do: assert(Options.validate!(opts))
    end

    test "fall back to pool_config's adapter_args, as upstream does", %{env: env} do
      [first, ml, _] = Config.pools!(env)
      assert first[:adapter_args] == ["--adapter", "pkg.Fallback"]
      assert ml[:adapter_args] == ["--adapter", "pkg.Model"]
    end

    test "size: the entry's, else default_pool_size, else the top-level pool_size" do
      pools = [%{name: :a, pool_size: 3}, %{name: :b}]
      assert [3, 6] == Enum.map(Config.pools!(pools: pools, pool_size: 6), & &1[:size])

      assert [3, 2] ==
               Enum.map(
                 Config.pools!(pools: pools, pool_size: 6, default_pool_size: 2),
                 & &1[:size]
               )
    end

    test "need a name each, all different" do
      assert raises(pools: [%{pool_size: 1}]) =~ "name"
      assert raises(pools: [%{name: :a}, %{name: :a}]) =~ ":a more than once"
      assert raises(pools: :default) =~ "`pools`"
    end

    test "the default pool's upstream name resolves to Snakepit.Pool; pool_name is a call option" do
      # The name the application last remembered; :default unless configured otherwise.
      assert Config.pool(:default) == Snakepit.Pool
      assert Config.pool(:other) == :other
      assert Options.call_pool(pool_name: :default) == Snakepit.Pool
      assert Options.call_pool(pool_name: :other, pool: :ignored) == :other
      assert Options.call_pool(pool: :mine) == :mine
      assert Options.call_pool([]) == Snakepit.Pool
      assert :ok = Options.validate_call(pool_name: :ml, timeout: 1_000)

      assert {:error, %Snakepit.Error{reason: :invalid_option, message: message}} =
               Options.validate_call(pool_name: "ml")

      assert message =~ ":pool_name"
    end
  end

  describe "upstream values" do
    test "worker_ttl: {n, unit}, :infinity or ms; worker_max_requests: a count or :infinity" do
      assert default_pool(worker_ttl: {1, :hours})[:worker_ttl] == 3_600_000
      assert default_pool(worker_ttl: {90, :seconds})[:worker_ttl] == 90_000
      assert default_pool(worker_ttl: :infinity)[:worker_ttl] == nil
      assert default_pool(worker_ttl: 250)[:worker_ttl] == 250
      assert default_pool(worker_max_requests: :infinity)[:worker_max_requests] == nil
      assert Options.validate!(worker_ttl: {2, :minutes})[:worker_ttl] == 120_000
      assert Options.validate!(worker_max_requests: :infinity)[:worker_max_requests] == nil
    end

    test "timeouts: default_command_timeout over pool_request_timeout over worker_timeout" do
      assert default_pool(worker_timeout: 1_000)[:timeout] == 1_000
      assert default_pool(worker_timeout: 1_000, pool_request_timeout: 2_000)[:timeout] == 2_000

      assert default_pool(pool_request_timeout: 2_000, default_command_timeout: 3_000)[:timeout] ==
               3_000

      assert default_pool(pool_request_timeout: :infinity)[:timeout] == :infinity
    end

    test "timeout_profile sets the execution and queue timeouts; explicit keys win" do
      opts = default_pool(timeout_profile: :production_strict)
      assert {opts[:timeout], opts[:queue_timeout]} == {60_000, 5_000}

      opts = default_pool(timeout_profile: :batch, pool_queue_timeout: 1_000)
      assert {opts[:timeout], opts[:queue_timeout]} == {3_600_000, 1_000}
    end

    test "heartbeat: ping_interval_ms and timeout_ms are the health checks; enabled: false stops them" do
      opts = default_pool(heartbeat: %{ping_interval_ms: 2_000, timeout_ms: 10_000})
      assert {opts[:health_check_interval], opts[:health_check_timeout]} == {2_000, 10_000}

      assert default_pool(heartbeat: [enabled: false])[:health_check_interval] == nil
      assert default_pool(heartbeat: %{"ping_interval_ms" => 500})[:health_check_interval] == 500

      # A pool's heartbeat is merged over the top-level one, as upstream does.
      opts =
        default_pool(
          heartbeat: %{enabled: false},
          pool_config: %{heartbeat: %{ping_interval_ms: 500}}
        )

      assert opts[:health_check_interval] == nil

      # Our own names win over upstream's at the same level.
      assert default_pool(heartbeat: %{ping_interval_ms: 500}, health_check_interval: 800)[
               :health_check_interval
             ] == 800
    end

    test "log_level: the Logger level, and SNAKEPIT_LOG_LEVEL for workers unless env sets it" do
      assert Config.log_level!(log_level: :none) == :none
      assert Config.log_level!([]) == nil
      assert {"SNAKEPIT_LOG_LEVEL", "debug"} in default_pool(log_level: :debug)[:env]

      assert default_pool(
               log_level: :debug,
               pool_config: %{env: [{"SNAKEPIT_LOG_LEVEL", "error"}]}
             )[:env] == [{"SNAKEPIT_LOG_LEVEL", "error"}]
    end

    test "accepted values of features we already have give no warning" do
      env = [
        capacity_strategy: :pool,
        heartbeat: %{
          enabled: true,
          max_missed_heartbeats: 1,
          initial_delay_ms: 0,
          dependent: true
        },
        pool_config: %{worker_profile: :process, capacity_strategy: :pool}
      ]

      assert Config.ignored(env) == []
      assert default_pool(env)
    end
  end

  describe "keys snakepit_rs does not have" do
    test "get one message each, naming every place it is set" do
      env = [
        grpc_port: 50_051,
        grpc_listener: %{mode: :internal},
        affinity: :hint,
        heartbeat: %{max_missed_heartbeats: 3},
        pool_config: %{startup_batch_size: 8},
        pools: [
          %{name: :default, affinity: :strict_queue, worker_profile: :thread},
          %{name: :ml, affinity: :hint, threads_per_worker: 4}
        ]
      ]

      messages = Config.ignored(env)

      for key <- ~w(grpc_port grpc_listener max_missed_heartbeats startup_batch_size
                    worker_profile threads_per_worker) do
        assert [_] = Enum.filter(messages, &(&1 =~ key)), "one message for #{key}"
      end

      # `affinity` is read (session affinity), so it is not among them.
      assert length(messages) == 6
      assert Enum.find(messages, &(&1 =~ "grpc_port")) =~ "no gRPC"

      # Ignored, never fatal: the pools still come out.
      assert [_, _] = Config.pools!(env)
    end

    test "with pools:, pool_config is read for adapter_module and adapter_args only" do
      messages = Config.ignored(pools: [%{name: :a}], pool_config: %{pool_size: 3})
      assert [message] = messages
      assert message =~ "`pool_config.pool_size`"
    end
  end

  describe "invalid values raise ArgumentError naming the key and the value" do
    test "top-level keys" do
      assert raises(worker_ttl: {1, :days}) =~ "`worker_ttl`"
      assert raises(worker_ttl: {1, :days}) =~ "{1, :days}"
      assert raises(pool_size: 0) =~ "`pool_size`"
      assert raises(pool_queue_timeout: -1) =~ "`pool_queue_timeout`"
      assert raises(pool_request_timeout: "60s") =~ ~s("60s")
      assert raises(timeout_profile: :fast) =~ ":fast"
      assert raises(pool_config: "x") =~ "`pool_config`"
      assert raises([log_level: :loud], &Config.log_level!/1) =~ "`log_level`"
      assert raises([pooling_enabled: "yes"], &Config.pooling_enabled?/1) =~ ~s("yes")
    end

    test "keys of pool_config, of pools entries and of heartbeats" do
      assert raises(pool_config: %{worker_max_requests: 0}) =~
               "`pool_config.worker_max_requests`"

      assert raises(pools: [%{name: :ml, pool_size: -2}]) =~ "`pools[:ml].pool_size`"
      assert raises(pools: [%{name: :ml, affinity: :sticky}]) =~ ":sticky"
      assert raises(pools: [%{name: :ml, worker_profile: :fiber}]) =~ ":fiber"
      assert raises(heartbeat: %{timeout_ms: 0}) =~ "`heartbeat.timeout_ms`"
      assert raises(heartbeat: %{enabled: "no"}) =~ "`heartbeat.enabled`"
      assert raises(pool_config: %{adapter_env: [{"A", self()}]}) =~ "`pool_config.adapter_env`"
    end
  end

  test "upstream's gRPC listener question has the answer that needs no port" do
    # Upstream's examples' bootstrap (`ensure_grpc_port!/0`) asks this before starting.
    assert {:ok, %{mode: :internal}} = Config.grpc_listener_config()
    assert %{mode: :internal} = Config.grpc_listener_config!()
  end
end
