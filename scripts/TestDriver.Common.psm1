#Requires -Version 5.1
<#
.SYNOPSIS
    Helpers shared by the TestDriver workflow scripts in this folder.

.DESCRIPTION
    Each script imports it and still runs its own elevation check. Nothing here reads the
    translated text of a Windows tool: service state and path come from WMI.
#>

# A module has its own session state: set the same preferences the scripts use.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

function Test-Administrator {
    <#
    .SYNOPSIS
        Tells whether the current PowerShell process runs elevated (in the Administrators role).

    .EXAMPLE
        if (-not (Test-Administrator)) { Write-Warning 'Not elevated.' }
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param()
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object -TypeName Security.Principal.WindowsPrincipal -ArgumentList $identity
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

function Assert-Administrator {
    <#
    .SYNOPSIS
        Throws, telling the user to "Run as administrator", unless PowerShell runs elevated.

    .EXAMPLE
        Assert-Administrator
    #>
    [CmdletBinding()]
    param()
    if (-not (Test-Administrator)) {
        throw 'This script must run elevated: open PowerShell with "Run as administrator" and run it again.'
    }
}

function Invoke-NativeCommand {
    <#
    .SYNOPSIS
        Runs a native program and returns its ExitCode and Output lines (stdout and stderr); the caller checks ExitCode.

    .DESCRIPTION
        The error preference is 'Continue' while it runs (5.1 would stop at each stderr line);
        a program that did not start throws "Could not run <FilePath>: ..." (no stale $LASTEXITCODE).

    .PARAMETER FilePath
        The program (sc.exe, bcdedit.exe, ...); throws "<FilePath> was not found on PATH." without it.

    .PARAMETER ArgumentList
        Arguments passed to the program, one array element per argument.

    .EXAMPLE
        $result = Invoke-NativeCommand -FilePath 'sc.exe' -ArgumentList @('delete', 'TestDrv')
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @()
    )
    if (-not (Get-Command -Name $FilePath -ErrorAction SilentlyContinue)) {
        throw "$FilePath was not found on PATH."
    }
    $previous = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    $startError = $null
    $global:LASTEXITCODE = $null
    try {
        $lines = & $FilePath @ArgumentList 2>&1 | ForEach-Object { "$_" }
        $code = $global:LASTEXITCODE
    }
    catch {
        $startError = $_
    }
    finally {
        $ErrorActionPreference = $previous
    }
    if ($null -ne $startError) {
        throw "Could not run ${FilePath}: $($startError.Exception.Message)"
    }
    if ($null -eq $code) {
        throw "Could not run ${FilePath}: it did not start, so it set no exit code."
    }
    [pscustomobject]@{
        ExitCode = $code
        Output   = @($lines)
    }
}

function Write-NativeOutput {
    <#
    .SYNOPSIS
        Shows the non-blank output lines of an Invoke-NativeCommand result, indented.

    .PARAMETER Result
        The object returned by Invoke-NativeCommand.

    .EXAMPLE
        Write-NativeOutput (Invoke-NativeCommand -FilePath 'sc.exe' -ArgumentList @('query', 'TestDrv'))
    #>
    [CmdletBinding()]
    param($Result)
    foreach ($line in $Result.Output) {
        if ($line.Trim().Length -gt 0) {
            Write-Host "    $line"
        }
    }
}

function Resolve-ExistingFile {
    <#
    .SYNOPSIS
        Returns the full path of an existing file, or throws "<Description> not found: <Path>".

    .PARAMETER Path
        Path of the file, as the user gave it.

    .PARAMETER Description
        What the file is, the start of the error message (for example 'Driver').

    .EXAMPLE
        $driver = Resolve-ExistingFile -Path $DriverPath -Description 'Driver'
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [Parameter(Mandatory)][string]$Path,
        [Parameter(Mandatory)][string]$Description
    )
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
        throw "$Description not found: $Path"
    }
    return (Resolve-Path -LiteralPath $Path).ProviderPath
}

function Test-TestSigningActive {
    <#
    .SYNOPSIS
        Tells whether test signing is active in this boot: "TESTSIGNING" among the loader's SystemStartOptions (registry, never translated).

    .EXAMPLE
        if (-not (Test-TestSigningActive)) { Write-Warning 'Test signing is off in this boot.' }
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param()
    $startOptions = (Get-ItemProperty -Path 'HKLM:\SYSTEM\CurrentControlSet\Control' -Name SystemStartOptions).SystemStartOptions
    return ($startOptions -match 'TESTSIGNING')
}

function Restart-ComputerIfRequested {
    <#
    .SYNOPSIS
        Ends a script whose changes need a reboot: restarts (-Restart, if the script's ShouldProcess agrees), or writes -Message.

    .PARAMETER Cmdlet
        The calling script's $PSCmdlet, so that its -WhatIf and -Confirm apply to the restart.

    .PARAMETER Restart
        Restart the computer (Restart-Computer -Force) instead of writing -Message.

    .PARAMETER Message
        Lines written with Write-Host when not restarting (empty strings give blank lines).

    .EXAMPLE
        Restart-ComputerIfRequested -Cmdlet $PSCmdlet -Restart:$Restart -Message 'REBOOT NEEDED: Restart-Computer.'
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][System.Management.Automation.PSCmdlet]$Cmdlet,
        [switch]$Restart,
        [Parameter(Mandatory)][AllowEmptyString()][string[]]$Message
    )
    if ($Restart) {
        if ($Cmdlet.ShouldProcess($env:COMPUTERNAME, 'Restart-Computer')) {
            Restart-Computer -Force
        }
    }
    else {
        foreach ($line in $Message) {
            Write-Host $line
        }
    }
}

function ConvertFrom-ImagePath {
    <#
    .SYNOPSIS
        Turns a service's ImagePath ("\??\C:\x.sys", "\SystemRoot\...", "System32\drivers\...", quoted) into a plain full path.

    .PARAMETER ImagePath
        The ImagePath as the registry or Win32_SystemDriver.PathName gives it.

    .EXAMPLE
        ConvertFrom-ImagePath -ImagePath '\??\C:\TestDriver\TestDriver.sys'
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param([AllowEmptyString()][string]$ImagePath)
    $p = "$ImagePath".Trim().Trim('"')
    if ($p.StartsWith('\??\')) {
        $p = $p.Substring(4)
    }
    if ($p -match '^(?i)\\SystemRoot\\(.*)$') {
        $p = Join-Path -Path $env:SystemRoot -ChildPath $Matches[1]
    }
    elseif ($p -match '^(?i)system32\\') {
        $p = Join-Path -Path $env:SystemRoot -ChildPath $p
    }
    return $p
}

function Get-DriverService {
    <#
    .SYNOPSIS
        Describes the service of a given name from WMI, or returns $null when there is none.

    .DESCRIPTION
        Reads Win32_SystemDriver, else Win32_Service (a program's service that took the name),
        whose State and ServiceType are the same strings on every display language.

    .PARAMETER Name
        Service name (letters, digits and underscores).

    .EXAMPLE
        $service = Get-DriverService -Name 'TestDrv'
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9_]+$')][string]$Name
    )
    $found = Get-CimInstance -ClassName Win32_SystemDriver -Filter "Name='$Name'"
    if (-not $found) {
        $found = Get-CimInstance -ClassName Win32_Service -Filter "Name='$Name'"
    }
    if (-not $found) {
        return $null
    }
    $found = @($found)[0]
    [pscustomobject]@{
        Name           = [string]$found.Name
        IsKernelDriver = ([string]$found.ServiceType -eq 'Kernel Driver')
        ServiceType    = [string]$found.ServiceType
        State          = [string]$found.State
        Running        = ([string]$found.State -eq 'Running')
        Stopped        = ([string]$found.State -eq 'Stopped')
        PathName       = [string]$found.PathName
        Path           = (ConvertFrom-ImagePath -ImagePath ([string]$found.PathName))
    }
}

function Find-TestDriverBuild {
    <#
    .SYNOPSIS
        Lists the TestDriver.sys (or .pdb) files of the package builds in the repository, newest first.

    .DESCRIPTION
        Looks in target\[x86_64-pc-windows-msvc\](release|debug)\(TestDriver_package|package),
        where cargo wdk build and cargo make (and their older releases) write the package.

    .PARAMETER RepositoryRoot
        The repository root (the folder holding target\).

    .PARAMETER FileName
        TestDriver.sys or TestDriver.pdb (the package folder holds both).

    .EXAMPLE
        $builds = @(Find-TestDriverBuild -RepositoryRoot (Split-Path -Parent $PSScriptRoot) -FileName 'TestDriver.sys')
    #>
    [CmdletBinding()]
    [OutputType([IO.FileInfo])]
    param(
        [Parameter(Mandatory)][string]$RepositoryRoot,
        [Parameter(Mandatory)][ValidateSet('TestDriver.sys', 'TestDriver.pdb')][string]$FileName
    )
    $found = @()
    foreach ($targetFolder in @('target', 'target\x86_64-pc-windows-msvc')) {
        foreach ($buildProfile in @('release', 'debug')) {
            foreach ($packageFolder in @('TestDriver_package', 'package')) {
                $file = Join-Path -Path $RepositoryRoot -ChildPath "$targetFolder\$buildProfile\$packageFolder\$FileName"
                if (Test-Path -LiteralPath $file -PathType Leaf) {
                    $found += Get-Item -LiteralPath $file
                }
            }
        }
    }
    return @($found | Sort-Object -Property LastWriteTime -Descending)
}

# Quoted names: the tree-sitter grammar used by check-ps1-syntax.py rejects a bare-word list.
Export-ModuleMember -Function @(
    'Test-Administrator', 'Assert-Administrator', 'Invoke-NativeCommand', 'Write-NativeOutput', 'Resolve-ExistingFile',
    'Test-TestSigningActive', 'Restart-ComputerIfRequested', 'ConvertFrom-ImagePath', 'Get-DriverService', 'Find-TestDriverBuild'
)
