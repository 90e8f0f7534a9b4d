defmodule Snakepit.LogForwarder do
  @moduledoc """
  An Erlang `:logger` handler that sends each log event to a test process as
  `{:log, level, message, metadata}`, so tests `assert_receive` log lines instead of sleeping.
  """

  @doc "Forwards log events to the calling process until the test ends."
  def forward_to_self do
    id = :"log_forwarder_#{System.unique_integer([:positive])}"
    :ok = :logger.add_handler(id, __MODULE__, %{config: %{pid: self()}})
    ExUnit.Callbacks.on_exit(fn -> :logger.remove_handler(id) end)
  end

  @doc """
  Waits until a worker of `pool` logged a line `matches?` accepts (a function of the line, or
  a suffix the line ends with); fails the test after 15 s.
  """
  def assert_worker_logged(pool, matches?) when is_binary(matches?),
    do: assert_worker_logged(pool, &String.ends_with?(&1, matches?))

  def assert_worker_logged(pool, matches?) do
    prefix = "#{pool}_worker_"

    receive do
      {:log, _level, line, %{snakepit_worker: worker}} ->
        if String.starts_with?("#{worker}", prefix) and matches?.(line),
          do: :ok,
          else: assert_worker_logged(pool, matches?)
    after
      15_000 -> ExUnit.Assertions.flunk("no worker of #{inspect(pool)} logged the line awaited")
    end
  end

  @doc false
  def log(%{level: level, msg: msg, meta: meta}, %{config: %{pid: pid}}) do
    send(pid, {:log, level, text(msg), meta})
  end

  defp text({:string, chardata}), do: IO.chardata_to_string(chardata)
  defp text({:report, report}), do: inspect(report)
  defp text({format, args}), do: IO.chardata_to_string(:io_lib.format(format, args))
end
