defmodule Snakepit.Native.Gate do
  @moduledoc false
  # The one place where a NIF's error, `{reason, message, details}` (a Rust error enum mapped to
  # a reason atom), becomes a `Snakepit.Error`: the kind crosses the boundary intact.

  alias Snakepit.Error

  @type native_error :: {Error.reason(), String.t(), map()}

  @doc "The `Snakepit.Error` for a NIF's error triple."
  @spec error(native_error()) :: Error.t()
  def error({reason, message, details}), do: Error.new(reason, message, details)
end
