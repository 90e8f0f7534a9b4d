defmodule Snakepit.TestBlocker do
  @moduledoc """
  Holds a worker inside its `block` command until the test releases it: no sleeping, no
  guessing how long a request takes.

  `block` (in both test workers) takes `%{"fifo" => path, "marker" => path}`, touches the
  marker, opens the FIFO for reading, reads one line and returns `%{"released" => line}`.

      blocker = TestBlocker.new!(tmp_dir)
      {:ok, pending} = Snakepit.Call.submit(pool, "block", TestBlocker.args(blocker))
      TestBlocker.assert_blocked(blocker)      # the worker is inside `block` now
      TestBlocker.release(blocker, "go")
      {:ok, %{"released" => "go" <> _}} = Snakepit.Call.await(pending)

  Opening a FIFO for writing waits until a reader opens it, so a holder process opens it as
  soon as the blocker exists and tells the test when the worker has opened the other end. The
  FIFO is opened in raw mode: a non-raw open would wait inside the VM's file server and stall
  every file operation of the VM meanwhile.
  """

  import ExUnit.Assertions, only: [assert_receive: 2, flunk: 1]

  defstruct [:fifo, :marker, :holder, :ref]

  @type t :: %__MODULE__{fifo: String.t(), marker: String.t(), holder: pid(), ref: reference()}

  @doc "Makes a FIFO in `dir` and a holder process waiting for a worker to open it."
  @spec new!(String.t()) :: t()
  def new!(dir) do
    name = "block_#{System.unique_integer([:positive])}"
    fifo = Path.join(dir, name <> ".fifo")
    {_, 0} = System.cmd("mkfifo", [fifo])
    test = self()
    ref = make_ref()
    holder = spawn_link(fn -> hold(fifo, test, ref) end)
    # A holder still waiting for a reader when the test ends sits in a blocking open; opening the
    # FIFO for reading and writing (which never waits on Linux) lets that open finish.
    ExUnit.Callbacks.on_exit(fn -> unblock(fifo) end)
    %__MODULE__{fifo: fifo, marker: Path.join(dir, name <> ".started"), holder: holder, ref: ref}
  end

  @doc "The args of the `block` command for this blocker."
  @spec args(t()) :: map()
  def args(%__MODULE__{fifo: fifo, marker: marker}), do: %{fifo: fifo, marker: marker}

  @doc "Waits until a worker is inside `block` for this blocker (it opened the FIFO)."
  @spec assert_blocked(t(), timeout()) :: :ok
  def assert_blocked(%__MODULE__{ref: ref}, timeout \\ 10_000) do
    assert_receive {:snakepit_blocked, ^ref}, timeout
    :ok
  end

  @doc "Lets the blocked worker go on: it reads `line` (sent with a newline) and returns it."
  @spec release(t(), String.t()) :: :ok
  def release(%__MODULE__{holder: holder}, line \\ "go") do
    send(holder, {:release, line})
    :ok
  end

  @doc "Whether a worker ever started `block` for this blocker (it touches the marker first)."
  @spec started?(t()) :: boolean()
  def started?(%__MODULE__{marker: marker}), do: File.exists?(marker)

  defp hold(fifo, test, ref) do
    {:ok, file} = File.open(fifo, [:write, :raw, :binary])
    send(test, {:snakepit_blocked, ref})

    receive do
      {:release, line} ->
        :ok = IO.binwrite(file, line <> "\n")
        File.close(file)
    end
  end

  defp unblock(fifo) do
    case File.open(fifo, [:read, :write, :raw]) do
      {:ok, file} -> File.close(file)
      {:error, _} -> :ok
    end
  end
end
