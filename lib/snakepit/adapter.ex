defmodule Snakepit.Adapter do
  @moduledoc """
  How a pool launches its workers.

  A worker is any program that speaks protocol v1 (`docs/protocol.md`): it reads requests on fd 3
  and writes replies on fd 4. An adapter names the program, its arguments and its environment;
  the pool does the rest. `Snakepit.Adapters.Python` (the default) runs the stdlib-only Python
  bridge in `priv/python/snakepit_bridge`.

  Each callback receives the pool's options (see `Snakepit.Pool`), so an adapter can read its
  own settings from `:adapter_args` or any other key. The callbacks run in the pool's process
  before it starts workers, and must return within the pool's `:startup_timeout` (an adapter
  that asks something of an external program bounds the wait by it and kills the program when
  it overruns, as `Snakepit.Adapters.Python` does).
  """

  @doc "Absolute path of the program each worker runs."
  @callback executable_path(opts :: keyword()) :: String.t()

  @doc "Arguments given to the program."
  @callback script_args(opts :: keyword()) :: [String.t()]

  @doc "Environment for the program, on top of the BEAM's."
  @callback env(opts :: keyword()) :: [{String.t(), String.t()}]

  @doc "Called once before the pool starts its workers; may check that the program exists."
  @callback init(opts :: keyword()) :: :ok | {:error, String.t()}

  @doc "Whether the workers implement streaming commands."
  @callback supports_streaming?() :: boolean()

  @optional_callbacks init: 1, supports_streaming?: 0
end
