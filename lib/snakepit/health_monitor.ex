defmodule Snakepit.HealthMonitor do
  @moduledoc """
  Counts the crashes a caller reports within a rolling window and says whether that is healthy,
  as upstream Snakepit's (v0.13), where it is a legacy module kept for compatibility.

      {:ok, hm} = Snakepit.HealthMonitor.start_link(name: :ml_health, pool: :ml, max_crashes: 5)
      Snakepit.HealthMonitor.record_crash(hm, "worker_1", %{reason: :oom})
      Snakepit.HealthMonitor.healthy?(hm)   # => true while fewer than 5 crashes in the window

  It only knows what it is told: pools do not report to it. A pool's own view of its workers'
  crashes is `Snakepit.get_stats/1` (`worker_crashes`, `workers_killed`, ...) and its life-cycle
  events (`:event_listener`, see `Snakepit.Pool`). Upstream's telemetry events are not emitted.
  """

  use GenServer

  # `use GenServer` defines child_spec/1 (and its doc); its spec:
  @spec child_spec(keyword()) :: Supervisor.child_spec()

  # Kept per worker: the latest crash reasons and times, as upstream keeps them.
  @kept_reasons 10
  @kept_times 100
  # A worker with this many crashes (ever) is unhealthy in `worker_health/2`, as upstream.
  @worker_crash_limit 3

  ## API

  @doc """
  Starts a monitor. Options: `:name` and `:pool` (required: the pool it speaks for),
  `:max_crashes` (crashes in the window that make it unhealthy, default `10`),
  `:crash_window_ms` (default `60000`), `:check_interval_ms` (how often old crashes are
  dropped, default `30000`), and `:clock`, a function returning the time in ms (default:
  monotonic time; tests pass their own).
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) do
    name = Keyword.fetch!(opts, :name)
    GenServer.start_link(__MODULE__, opts, name: name)
  end

  @doc "Records a crash of `worker_id`; `info` may hold a `:reason`."
  @spec record_crash(GenServer.server(), String.t(), map()) :: :ok
  def record_crash(server, worker_id, info \\ %{}),
    do: GenServer.cast(server, {:crash, worker_id, info})

  @doc "Whether fewer than `:max_crashes` crashes fall in the window."
  @spec healthy?(GenServer.server()) :: boolean()
  def healthy?(server), do: GenServer.call(server, :healthy?)

  @doc "`healthy` (fewer than 3 crashes recorded), `crash_count` and `last_crash_time`."
  @spec worker_health(GenServer.server(), String.t()) :: map()
  def worker_health(server, worker_id), do: GenServer.call(server, {:worker_health, worker_id})

  @doc """
  `pool`, `total_crashes`, `crashes_in_window`, `workers_with_crashes`, `max_crashes`,
  `crash_window_ms` and `is_healthy`.
  """
  @spec stats(GenServer.server()) :: map()
  def stats(server), do: GenServer.call(server, :stats)

  ## Server

  @impl true
  def init(opts) do
    monitor = %{
      pool: Keyword.fetch!(opts, :pool),
      workers: %{},
      total_crashes: 0,
      max_crashes: Keyword.get(opts, :max_crashes, 10),
      crash_window_ms: Keyword.get(opts, :crash_window_ms, 60_000),
      check_interval_ms: Keyword.get(opts, :check_interval_ms, 30_000),
      clock: Keyword.get(opts, :clock, fn -> System.monotonic_time(:millisecond) end)
    }

    schedule_prune(monitor)
    {:ok, monitor}
  end

  @impl true
  def handle_call(:healthy?, _from, monitor),
    do: {:reply, in_window(monitor) < monitor.max_crashes, monitor}

  def handle_call({:worker_health, worker_id}, _from, monitor) do
    worker = Map.get(monitor.workers, worker_id, %{crash_count: 0, last_crash_time: nil})

    {:reply,
     %{
       healthy: worker.crash_count < @worker_crash_limit,
       crash_count: worker.crash_count,
       last_crash_time: worker.last_crash_time
     }, monitor}
  end

  def handle_call(:stats, _from, monitor) do
    crashes = in_window(monitor)

    {:reply,
     %{
       pool: monitor.pool,
       total_crashes: monitor.total_crashes,
       crashes_in_window: crashes,
       workers_with_crashes: map_size(monitor.workers),
       max_crashes: monitor.max_crashes,
       crash_window_ms: monitor.crash_window_ms,
       is_healthy: crashes < monitor.max_crashes
     }, monitor}
  end

  @impl true
  def handle_cast({:crash, worker_id, info}, monitor) do
    now = monitor.clock.()
    empty = %{crash_count: 0, last_crash_time: nil, crash_reasons: [], crash_times: []}
    worker = Map.get(monitor.workers, worker_id, empty)

    worker = %{
      worker
      | crash_count: worker.crash_count + 1,
        last_crash_time: now,
        crash_reasons: Enum.take([Map.get(info, :reason) | worker.crash_reasons], @kept_reasons),
        crash_times: Enum.take([now | worker.crash_times], @kept_times)
    }

    {:noreply,
     %{
       monitor
       | workers: Map.put(monitor.workers, worker_id, worker),
         total_crashes: monitor.total_crashes + 1
     }}
  end

  # Drops crash times older than the window, and workers with none left.
  @impl true
  def handle_info(:prune, monitor) do
    since = monitor.clock.() - monitor.crash_window_ms

    workers =
      for {id, worker} <- monitor.workers,
          times = Enum.filter(worker.crash_times, &(&1 >= since)),
          times != [],
          into: %{},
          do: {id, %{worker | crash_times: times}}

    schedule_prune(monitor)
    {:noreply, %{monitor | workers: workers}}
  end

  def handle_info(_unexpected, monitor), do: {:noreply, monitor}

  defp schedule_prune(monitor), do: Process.send_after(self(), :prune, monitor.check_interval_ms)

  defp in_window(monitor) do
    since = monitor.clock.() - monitor.crash_window_ms

    for {_, worker} <- monitor.workers, time <- worker.crash_times, time >= since, reduce: 0 do
      count -> count + 1
    end
  end
end
