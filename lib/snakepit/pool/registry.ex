defmodule Snakepit.Pool.Registry do
  @moduledoc """
  Running pools by name: each name maps to its native pool (the resource the NIFs take) and the
  call defaults a request needs (`:queue_timeout`, `:timeout`).

  Wherever a function here takes a pool, the pid of a pool's process (`Snakepit.Pool`, as
  `start_link/1` returns it) works as well as its name.

  Entries live in `:persistent_term`: the request path reads one on every call, without a
  process hop or a copy; they are written only when a pool starts or stops.

  `worker_count/0` and `list_workers/0` answer upstream Snakepit's functions of the same names,
  over every running pool.
  """

  alias Snakepit.{Error, Native}

  @typedoc "What a call needs to know about a pool."
  @type entry :: {native :: reference(), queue_timeout :: pos_integer(), timeout :: pos_integer()}

  @doc "Registers a started pool under `name`, with the call defaults from its options."
  @spec register(atom(), reference(), keyword()) :: :ok
  def register(name, native, opts),
    do: :persistent_term.put(key(name), {native, opts[:queue_timeout], opts[:timeout]})

  @doc "Forgets the pool registered under `name`."
  @spec unregister(atom()) :: :ok
  def unregister(name) do
    :persistent_term.erase(key(name))
    :ok
  end

  @doc "The entry of a running pool (by name or pid), or `:pool_not_initialized`."
  @spec lookup(term()) :: {:ok, entry()} | {:error, Error.t()}
  def lookup(pool) do
    case entry(pool) do
      nil -> {:error, not_running(pool)}
      entry -> {:ok, entry}
    end
  end

  @doc "The native pool of a running pool (by name or pid), or `nil`."
  @spec native(term()) :: reference() | nil
  def native(pool) do
    case entry(pool) do
      {native, _, _} -> native
      nil -> nil
    end
  end

  @doc """
  The native pool of a running pool; raises `Snakepit.Error` when it is not running
  (introspecting a pool that does not run is a programming error).
  """
  @spec native!(term()) :: reference()
  def native!(pool), do: native(pool) || raise(not_running(pool))

  @doc "The names of the running pools."
  @spec pools() :: [atom()]
  def pools do
    for {{Snakepit.Pool, name}, {native, _, _}} <- :persistent_term.get(),
        is_atom(name) and is_reference(native),
        do: name
  end

  @doc "How many workers the running pools have, all together (upstream's `worker_count/0`)."
  @spec worker_count() :: non_neg_integer()
  def worker_count, do: length(list_workers())

  @doc "The ids of the workers of every running pool (upstream's `list_workers/0`)."
  @spec list_workers() :: [String.t()]
  def list_workers do
    for pool <- pools(),
        native = native(pool),
        native != nil,
        %{id: id} <- Native.pool_workers(native),
        do: id
  end

  # A pid stands for the pool whose process it is: pools register their process under their
  # name, so the pid's registered name finds the entry.
  defp entry(pool) when is_pid(pool), do: if(name = pool_name(pool), do: entry(name))
  # An atom is a registered pool name or, on a miss, upstream's name for the default pool (the
  # first `pools:` entry's `name`, or `:default`; see `Snakepit.Config.pool/1`).
  defp entry(pool) do
    case :persistent_term.get(key(pool), nil) do
      nil when is_atom(pool) -> aliased_entry(pool, Snakepit.Config.pool(pool))
      entry -> entry
    end
  end

  defp aliased_entry(pool, pool), do: nil
  defp aliased_entry(_name, pool), do: :persistent_term.get(key(pool), nil)

  defp pool_name(pid) when node(pid) == node() do
    case Process.info(pid, :registered_name) do
      {:registered_name, name} -> name
      _ -> nil
    end
  end

  defp pool_name(_remote_pid), do: nil

  defp not_running(pool),
    do: Error.new(:pool_not_initialized, "pool #{inspect(pool)} is not running")

  # The key predates this module; bench/submit_nif.exs reads it directly.
  defp key(name), do: {Snakepit.Pool, name}
end
