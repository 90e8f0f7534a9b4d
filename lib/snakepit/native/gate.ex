defmodule Snakepit.Native.Gate do
  @moduledoc false
  # The one place where a NIF's error, `{reason, message, details}` (a Rust error enum mapped to
  # a reason atom, details with string keys), becomes a `Snakepit.Error`: the kind crosses the
  # boundary intact, the details get atom keys, and an error raised by the worker's code gets
  # its exception struct (upstream's shape, see `Snakepit.Error`).

  alias Snakepit.Error
  alias Snakepit.Error.PythonException

  @type native_error :: {Error.reason(), String.t(), map()}

  # Every key the NIF puts in details (native/snakepit_rs/src/error.rs); a key not listed stays
  # a string rather than create atoms from data.
  @keys Map.new(
          ~w(type message traceback worker_id exit waited_ms timeout_ms max_queue_size),
          &{&1, :"#{&1}"}
        )

  @doc "The `Snakepit.Error` for a NIF's error triple."
  @spec error(native_error()) :: Error.t()
  def error({reason, message, details}) when reason in [:worker_error, :unknown_command] do
    details = atom_keys(details)

    type = details[:type] || "Exception"
    exception = PythonException.new(type, details[:message] || message, traceback(details))
    Error.from_python_exception(reason, message, exception, details)
  end

  def error({reason, message, details}), do: Error.new(reason, message, atom_keys(details))

  defp atom_keys(details) when map_size(details) == 0, do: details

  defp atom_keys(details),
    do: Map.new(details, fn {key, value} -> {Map.get(@keys, key, key), value} end)

  # An empty traceback is none.
  defp traceback(%{traceback: traceback}) when is_binary(traceback) and traceback != "",
    do: traceback

  defp traceback(_details), do: nil
end
