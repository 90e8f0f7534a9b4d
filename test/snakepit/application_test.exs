defmodule Snakepit.ApplicationTest do
  # Restarts the :snakepit_rs application, so it runs alone.
  use ExUnit.Case, async: false

  alias Snakepit.TestPool

  setup do
    saved = Application.get_all_env(:snakepit)

    on_exit(fn ->
      Application.stop(:snakepit_rs)

      for {key, _} <- Application.get_all_env(:snakepit),
          do: Application.delete_env(:snakepit, key)

      for {key, value} <- saved, do: Application.put_env(:snakepit, key, value)
      {:ok, _} = Application.ensure_all_started(:snakepit_rs)
    end)

    Application.stop(:snakepit_rs)
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

  test "pooling_enabled starts Snakepit.Pool from config :snakepit" do
    configure(3)

    assert Snakepit.Config.pool_options()
           |> Keyword.take([:size, :queue_timeout, :max_queue_size]) ==
             [size: 3, queue_timeout: 1_234, max_queue_size: 7]

    {:ok, _} = Application.ensure_all_started(:snakepit_rs)
    assert :ok = Snakepit.Pool.await_ready()
    assert {:ok, %{"status" => "pong"}} = Snakepit.execute("ping", %{})
    assert %{workers: 3} = Snakepit.get_stats()
    assert {:ok, %{"pid" => _}} = Snakepit.execute("whoami", %{})
  end

  test "without pooling_enabled no pool starts" do
    Application.put_env(:snakepit, :pooling_enabled, false)
    {:ok, _} = Application.ensure_all_started(:snakepit_rs)
    refute Process.whereis(Snakepit.Pool)
  end

  test "run_as_script starts the pool, runs the function and leaves no worker process" do
    configure(2)
    Application.put_env(:snakepit, :pooling_enabled, false)

    {result, os_pids} =
      Snakepit.run_as_script(fn ->
        {:ok, %{"status" => "pong"} = pong} = Snakepit.execute("ping", %{})
        {pong["status"], Snakepit.Pool.os_pids()}
      end)

    assert result == "pong"
    assert length(os_pids) == 2
    refute Enum.any?(os_pids, &TestPool.os_process_alive?/1)
    refute Process.whereis(Snakepit.Pool)
  end

  test "run_as_script returns the pool's error when it cannot start" do
    configure(1)
    Application.put_env(:snakepit, :pool_config, %{adapter_args: ["--adapter", "missing.Mod"]})

    assert {:error, %Snakepit.Error{reason: :pool_not_initialized}} =
             Snakepit.run_as_script(fn -> flunk("must not run") end)
  end
end
