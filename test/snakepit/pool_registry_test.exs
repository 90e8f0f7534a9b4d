defmodule Snakepit.PoolRegistryTest do
  # Counts workers across every running pool, so it runs alone (after the async tests).
  use ExUnit.Case, async: false

  alias Snakepit.Pool.Registry
  alias Snakepit.TestPool

  test "a pool's pid works wherever its name does" do
    {pid, name} = TestPool.start_owned_test_workers!(size: 2)

    assert {:ok, {native, queue_timeout, timeout}} = Registry.lookup(pid)
    assert Registry.lookup(name) == {:ok, {native, queue_timeout, timeout}}
    assert Registry.native(pid) == native
    assert Registry.native!(pid) == native
    assert %{workers: 2} = Snakepit.get_stats(pid)
    assert [%{id: _}, %{id: _}] = Snakepit.list_workers(pid)
    assert Snakepit.Pool.os_pids(pid) == Snakepit.Pool.os_pids(name)
  end

  test "a pid that is not a running pool is :pool_not_initialized" do
    {pid, _name} = TestPool.start_owned_test_workers!(size: 1)
    :ok = GenServer.stop(pid)
    {:ok, unnamed} = Agent.start_link(fn -> nil end)
    {:ok, named} = Agent.start_link(fn -> nil end, name: :script_registry_not_a_pool)

    for other <- [pid, self(), unnamed, named] do
      assert {:error, %Snakepit.Error{reason: :pool_not_initialized, message: message}} =
               Registry.lookup(other)

      assert message =~ inspect(other)
      assert Registry.native(other) == nil
      assert_raise Snakepit.Error, fn -> Registry.native!(other) end
    end
  end

  test "pools/0 names the running pools" do
    {pid, name} = TestPool.start_owned_test_workers!(size: 1)
    assert name in Registry.pools()
    :ok = GenServer.stop(pid)
    refute name in Registry.pools()
  end

  test "worker_count/0 and list_workers/0 cover every running pool (upstream's names)" do
    before = Registry.worker_count()
    a = TestPool.start_test_workers!(size: 2)
    b = TestPool.start_test_workers!(size: 3)

    ids = for pool <- [a, b], %{id: id} <- Snakepit.list_workers(pool), do: id
    assert length(ids) == 5
    assert Enum.all?(ids, &(&1 in Registry.list_workers()))
    assert Registry.worker_count() == before + 5
    assert Registry.worker_count() == length(Registry.list_workers())
  end

  test "await_init_complete/2 returns once every worker of the first round has started" do
    opts = TestPool.options(size: 3, adapter_module: Snakepit.Adapters.TestWorker)
    opts = Keyword.put(opts, :adapter_args, ["--start-delay-ms", "100"])
    {:ok, pid} = Snakepit.Pool.start_link(opts)

    assert :ok = Snakepit.Pool.await_init_complete(opts[:name], 30_000)
    assert %{workers: 3, available: 3} = Snakepit.get_stats(pid)
    assert :ok = Snakepit.Pool.await_init_complete(pid)
  end

  test "await_init_complete/2 of a pool that is not running is an error" do
    assert {:error, %Snakepit.Error{reason: :pool_not_initialized}} =
             Snakepit.Pool.await_init_complete(:script_registry_no_such_pool, 1_000)
  end
end
