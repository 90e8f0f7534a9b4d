defmodule SnakepitBench.PortPool do
  @moduledoc """
  The baseline: a pure-OTP pool of Python bridge workers, designed like upstream Snakepit's "V3"
  pool.

    * one `SnakepitBench.PortPool.Worker` GenServer per worker, owning a `Port` opened with
      `{:packet, 4}` and `:nouse_stdio` (requests on fd 3, replies on fd 4, JSON payloads);
    * this GenServer, the pool, keeps the free workers and a `:queue` of waiting callers.

  A request is checkout → call the worker → checkin, all driven from the caller's process.
  Callers that find no free worker wait in the queue for at most `:queue_timeout` ms. A caller
  that dies while it holds or waits for a worker is noticed through a monitor, so no worker leaks.
  """

  use GenServer

  alias SnakepitBench.PortPool.Worker

  ## API

  @doc """
  Starts the pool and its workers; returns once every worker has sent its ready frame.

  Options: `:name`, `:size`, `:python` (interpreter path), `:bridge_path` (the directory holding
  `snakepit_bridge`), `:queue_timeout` (ms, default 5000), `:startup_timeout` (ms, default 10000).
  """
  def start_link(opts) do
    GenServer.start_link(__MODULE__, opts, name: Keyword.fetch!(opts, :name))
  end

  @doc "Runs `command` with `args` on a free worker: `{:ok, result}` or `{:error, reason}`."
  def execute(pool, command, args, timeout \\ 30_000) do
    case GenServer.call(pool, :checkout, :infinity) do
      {:ok, worker, ref} ->
        try do
          Worker.call(worker, command, args, timeout)
        after
          GenServer.cast(pool, {:checkin, ref})
        end

      {:error, _} = error ->
        error
    end
  end

  @doc "Stops the pool: closes every worker's port and waits for the Python processes to exit."
  def stop(pool), do: GenServer.stop(pool, :normal, 30_000)

  @doc "OS pids of the pool's workers (as announced in their ready frames)."
  def os_pids(pool), do: GenServer.call(pool, :os_pids)

  ## Pool

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    size = Keyword.fetch!(opts, :size)
    worker_opts = Keyword.take(opts, [:python, :bridge_path, :startup_timeout])

    # Start all the workers at once: each start blocks until its ready frame arrives.
    started =
      1..size
      |> Task.async_stream(fn _ -> Worker.start(worker_opts) end,
        max_concurrency: size,
        timeout: :infinity
      )
      |> Enum.map(fn {:ok, result} -> result end)

    workers = for {:ok, pid} <- started, do: pid
    Enum.each(workers, &Process.link/1)

    case for({:error, reason} <- started, do: reason) do
      [] ->
        {:ok,
         %{
           workers: workers,
           available: workers,
           # Refs of waiting callers in arrival order; `waiting` holds the live ones.
           queue: :queue.new(),
           waiting: %{},
           # Monitor ref of a caller => the worker it holds.
           busy: %{},
           queue_timeout: Keyword.get(opts, :queue_timeout, 5_000)
         }}

      [reason | _] ->
        Enum.each(workers, &Worker.stop/1)
        {:stop, {:worker_start_failed, reason}}
    end
  end

  @impl true
  def handle_call(:checkout, {caller, _} = from, state) do
    ref = Process.monitor(caller)

    case state.available do
      [worker | rest] ->
        {:reply, {:ok, worker, ref},
         %{state | available: rest, busy: Map.put(state.busy, ref, worker)}}

      [] ->
        timer = Process.send_after(self(), {:queue_timeout, ref}, state.queue_timeout)

        {:noreply,
         %{
           state
           | queue: :queue.in(ref, state.queue),
             waiting: Map.put(state.waiting, ref, {from, timer})
         }}
    end
  end

  def handle_call(:os_pids, _from, state),
    do: {:reply, Enum.map(state.workers, &Worker.os_pid/1), state}

  @impl true
  def handle_cast({:checkin, ref}, state) do
    Process.demonitor(ref, [:flush])
    {:noreply, release(ref, state)}
  end

  @impl true
  def handle_info({:queue_timeout, ref}, state) do
    case Map.pop(state.waiting, ref) do
      {{from, _timer}, waiting} ->
        Process.demonitor(ref, [:flush])
        GenServer.reply(from, {:error, :queue_timeout})
        {:noreply, %{state | waiting: waiting}}

      {nil, _} ->
        {:noreply, state}
    end
  end

  # A caller died: give back its worker, or forget it if it was waiting.
  def handle_info({:DOWN, ref, :process, _, _}, state) do
    case Map.pop(state.waiting, ref) do
      {{_from, timer}, waiting} ->
        Process.cancel_timer(timer)
        {:noreply, %{state | waiting: waiting}}

      {nil, _} ->
        {:noreply, release(ref, state)}
    end
  end

  # A worker died (its Python process exited): the baseline does not restart workers. Other
  # exits are those of the start-up tasks.
  def handle_info({:EXIT, pid, reason}, state) do
    if pid in state.workers,
      do: {:stop, {:worker_exit, reason}, state},
      else: {:noreply, state}
  end

  @impl true
  def terminate(_reason, state) do
    # Close every port at once, then wait for all the processes to be gone.
    state.workers
    |> Enum.map(&Task.async(fn -> Worker.stop(&1) end))
    |> Task.await_many(:infinity)
  end

  # Hands the worker held under `ref` to the next live waiter, or marks it free.
  defp release(ref, state) do
    case Map.pop(state.busy, ref) do
      {nil, _} -> state
      {worker, busy} -> hand_over(worker, %{state | busy: busy})
    end
  end

  defp hand_over(worker, state) do
    case :queue.out(state.queue) do
      {{:value, ref}, queue} ->
        case Map.pop(state.waiting, ref) do
          {{from, timer}, waiting} ->
            Process.cancel_timer(timer)
            GenServer.reply(from, {:ok, worker, ref})

            %{
              state
              | queue: queue,
                waiting: waiting,
                busy: Map.put(state.busy, ref, worker)
            }

          # Timed out or died while waiting: skip it.
          {nil, _} ->
            hand_over(worker, %{state | queue: queue})
        end

      {:empty, _} ->
        %{state | available: [worker | state.available]}
    end
  end
end

defmodule SnakepitBench.PortPool.Worker do
  @moduledoc """
  One Python bridge process behind a `Port`. Requests are encoded to JSON here, sent as one
  `{:packet, 4}` frame, and the reply frame with the same id is decoded and returned.
  """

  use GenServer

  alias SnakepitBench.JSON

  @doc "Starts a worker (unlinked) and waits for its ready frame."
  def start(opts), do: GenServer.start(__MODULE__, opts)

  def call(worker, command, args, timeout),
    do: GenServer.call(worker, {:execute, command, args}, timeout)

  def os_pid(worker), do: GenServer.call(worker, :os_pid)

  @doc "Closes the port (the bridge exits on end of file) and waits for the process to exit."
  def stop(worker), do: GenServer.stop(worker, :normal, 30_000)

  @impl true
  def init(opts) do
    bridge_path = Keyword.fetch!(opts, :bridge_path)

    port =
      Port.open({:spawn_executable, Keyword.fetch!(opts, :python)}, [
        {:packet, 4},
        :nouse_stdio,
        :binary,
        :exit_status,
        args: ["-m", "snakepit_bridge"],
        # The same Python variables snakepit_rs sets for its workers.
        env: [
          {~c"PYTHONPATH", String.to_charlist(bridge_path)},
          {~c"PYTHONUNBUFFERED", ~c"1"},
          {~c"PYTHONDONTWRITEBYTECODE", ~c"1"}
        ]
      ])

    receive do
      {^port, {:data, frame}} ->
        case JSON.decode(frame) do
          {:ok, %{"type" => "ready", "pid" => os_pid}} ->
            {:ok, %{port: port, os_pid: os_pid, next_id: 1, pending: %{}}}

          other ->
            Port.close(port)
            {:stop, {:bad_handshake, other}}
        end

      {^port, {:exit_status, status}} ->
        {:stop, {:exited_before_ready, status}}
    after
      Keyword.get(opts, :startup_timeout, 10_000) ->
        Port.close(port)
        {:stop, :startup_timeout}
    end
  end

  @impl true
  def handle_call({:execute, command, args}, from, state) do
    id = state.next_id

    request =
      JSON.encode(%{
        "id" => id,
        "command" => command,
        "args" => args,
        "session_id" => nil,
        "stream" => false
      })

    Port.command(state.port, request)
    {:noreply, %{state | next_id: id + 1, pending: Map.put(state.pending, id, from)}}
  end

  def handle_call(:os_pid, _from, state), do: {:reply, state.os_pid, state}

  @impl true
  def handle_info({port, {:data, frame}}, %{port: port} = state) do
    case JSON.decode(frame) do
      {:ok, %{"id" => id} = reply} ->
        {from, pending} = Map.pop(state.pending, id)
        if from, do: GenServer.reply(from, result(reply))
        {:noreply, %{state | pending: pending}}

      other ->
        {:stop, {:bad_frame, other}, state}
    end
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = state) do
    Enum.each(state.pending, fn {_id, from} ->
      GenServer.reply(from, {:error, {:exit, status}})
    end)

    {:stop, {:worker_exited, status}, %{state | port: nil}}
  end

  @impl true
  def terminate(_reason, %{port: nil}), do: :ok

  def terminate(_reason, state) do
    Port.close(state.port)
    SnakepitBench.OS.await_exit([state.os_pid])
  end

  defp result(%{"ok" => true, "result" => result}), do: {:ok, result}
  defp result(%{"ok" => false, "error" => error}), do: {:error, error}
end
